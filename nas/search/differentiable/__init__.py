"""Differentiable architecture search: DARTS (first and second order), GDAS and ProxylessNAS on
supernets built from a space's own ops, with ProxylessNAS's latency loss ``lambda * E[lat]`` from a
per-op latency table measured with onnxruntime on this machine.

Modules: :mod:`.supernet` (mixed ops, the NB201, DARTS and MobileNetV3 supernets), :mod:`.methods`
(the four methods' steps), :mod:`.latency` (the lookup table), :mod:`.search` (a run and its folder),
:mod:`.cli` (``nas search --strategy darts|darts2|gdas|proxyless`` and ``nas latency build-lut``).
Everything here imports torch, so the package's ``__init__`` imports nothing.
"""

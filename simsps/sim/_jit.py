"""``kernel_jit``: ``jax.jit`` with the XLA options the simulation's kernels run fastest with.

On CPUs, XLA's newer fusion emitters make the kernel's long elementwise fusions (threefry,
``log``, ``erf_inv``) about 1.5x slower than its classic LLVM emitters
(``xla_cpu_use_fusion_emitters=false``; measured side by side in ``benchmarks/``; the
streams are bit-identical either way, tested). The option is a CPU one (other backends
ignore it); an XLA that no longer knows it refuses it, and then the kernels compile with
XLA's defaults instead.
"""

from __future__ import annotations

import functools

import jax

__all__ = ["kernel_jit", "KERNEL_OPTIONS"]

KERNEL_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


class _KernelJit:
    """A jitted function compiled with :data:`KERNEL_OPTIONS`, or without them where XLA
    does not know them. Calls, ``lower`` and ``_cache_size`` as a ``jax.jit`` function."""

    _options_known: bool | None = None  # learnt once per process

    def __init__(self, fun, **jit_kwargs):
        functools.update_wrapper(self, fun)
        self._tuned = jax.jit(fun, compiler_options=KERNEL_OPTIONS, **jit_kwargs)
        self._plain = jax.jit(fun, **jit_kwargs)

    def _jitted(self):
        return self._plain if _KernelJit._options_known is False else self._tuned

    def __call__(self, *args, **kwargs):
        if _KernelJit._options_known is False:
            return self._plain(*args, **kwargs)
        try:
            out = self._tuned(*args, **kwargs)
        except ValueError as e:  # traced into another jit, whose options are its own
            if "top-level" not in str(e):
                raise
            return self._plain(*args, **kwargs)
        except jax.errors.JaxRuntimeError as e:  # an XLA that does not know the options
            if "compile option" not in str(e):
                raise
            _KernelJit._options_known = False
            return self._plain(*args, **kwargs)
        _KernelJit._options_known = True
        return out

    def lower(self, *args, **kwargs):
        return self._jitted().lower(*args, **kwargs)

    def _cache_size(self) -> int:
        return self._tuned._cache_size() + self._plain._cache_size()

    def clear_cache(self) -> None:
        self._tuned.clear_cache()
        self._plain.clear_cache()


def kernel_jit(fun=None, **jit_kwargs):
    """Decorator: ``@kernel_jit(static_argnames=(...))`` as ``jax.jit``, with the options."""
    if fun is None:
        return functools.partial(kernel_jit, **jit_kwargs)
    return _KernelJit(fun, **jit_kwargs)

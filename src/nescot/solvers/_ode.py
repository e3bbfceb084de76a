"""Integration of learned velocity fields from t = 0 to t = 1, with diffrax."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import jax

FIXED_STEP_SOLVERS: dict[str, type[diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "tsit5": diffrax.Tsit5,
}
ADAPTIVE_SOLVERS: dict[str, type[diffrax.AbstractSolver]] = {"dopri5": diffrax.Dopri5, "tsit5_adaptive": diffrax.Tsit5}


def check_ode_solver(name: str, n_steps: int) -> None:
    """Validate an integrator name and step count."""
    if name not in FIXED_STEP_SOLVERS and name not in ADAPTIVE_SOLVERS:
        raise ValueError(f"Unknown ode_solver {name!r}; choose from {sorted(FIXED_STEP_SOLVERS | ADAPTIVE_SOLVERS)}.")
    if int(n_steps) < 1:
        raise ValueError(f"`ode_steps` must be >= 1, got {n_steps}.")


def integrate(
    velocity: Callable[[jax.Array, jax.Array], jax.Array],
    z0: jax.Array,
    *,
    solver: str = "heun",
    n_steps: int = 16,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> jax.Array:
    """Solve ``dz/dt = velocity(t, z)`` on [0, 1] from ``z0`` and return ``z(1)``.

    Fixed-step solvers take ``n_steps`` equal steps; adaptive ones (``"dopri5"``) use a PID step-size
    controller with tolerances ``rtol``, ``atol`` and at most ``64 * n_steps`` steps.
    """
    term = diffrax.ODETerm(lambda t, z, args: velocity(t, z))
    if solver in FIXED_STEP_SOLVERS:
        sol = diffrax.diffeqsolve(
            term,
            FIXED_STEP_SOLVERS[solver](),
            t0=0.0,
            t1=1.0,
            dt0=1.0 / n_steps,
            y0=z0,
            stepsize_controller=diffrax.ConstantStepSize(),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=n_steps,
            # exactly n_steps steps: nothing can fail, and the runtime check's host callback would keep the
            # sampler out of JAX's persistent compilation cache (settings.compilation_cache_dir)
            throw=False,
        )
    else:
        sol = diffrax.diffeqsolve(
            term,
            ADAPTIVE_SOLVERS[solver](),
            t0=0.0,
            t1=1.0,
            dt0=None,
            y0=z0,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=64 * n_steps,
        )
    return sol.ys[0]

"""Optimizers, learning-rate schedules, weight penalties and gradient clipping — the update is part of the graph.

    opt = Adam(learning_rate=1e-3)
    train_op = opt.minimize(loss)                 # backward + update ops; one tensor to fetch
    prog = gn.compile([loss, train_op])
    loss_value, step = prog.run({x: xb, y: yb})   # forward, backward and update in one run()

`minimize(loss, var_list)` adds to the graph, after the forward ops:

  1. backward   g = ∂loss/∂w for every w in var_list (`gn.gradients`; frozen variables are not in it) — in
                data-parallel training, the gradient of the global batch's loss, summed over the ranks by one
                all-reduce step (`opt.all_reduce`, set by graphnet.distributed.DistributedOptimizer)
  2. update     optionally g ← clip_by_global_norm(g), then the optimizer's rule as `gn.assign` ops that write
                each variable and its slots in place, and t ← t + 1

The train op is the assignment of the step counter t; every other assignment is a side effect of it, so fetching
it runs them all. The compiler orders each assignment after every read of the old value.

State lives in non-trainable variables, so a checkpoint saves it with the weights:
  * `opt.step`           t, the number of updates done (Adam's bias correction reads it in the graph)
  * `opt.learning_rate`  η, a scalar variable: changing it needs no recompiling
  * `opt.slots[w]`       per-variable state: momentum, Adam's moments, ...

Schedules are plain functions of the step, η_t = schedule(t), evaluated on the host: before each step the fit
loop calls `opt.update_learning_rate(t)`, which writes the 4-byte scalar with `assign_value`. (They stay out of
the graph because they need cos and floor, which are not ops, and because the printed schedule stays the update
rule alone.) In a hand-written loop, call it yourself before `prog.run`.
"""
import math

import numpy as np

from . import ops
from .autodiff import gradients
from .errors import GraphError, user_site
from .graph import Tensor, variable


# ---------------------------------------------------------------------------------------------------------------
# Weight penalties and gradient clipping: ordinary graph ops

def _as_list(weights):
    if isinstance(weights, dict):
        return list(weights.values())
    if isinstance(weights, Tensor):
        return [weights]
    return list(weights)


def l2_penalty(weights, strength):
    """(λ/2) · Σ_w Σ w², whose gradient is λ·w: add it to the loss ("weight decay", coupled to the gradient)."""
    return _penalty(weights, lambda w: ops.mul(ops.mul(w, w), 0.5 * float(strength)), "l2_penalty")


def l1_penalty(weights, strength):
    """λ · Σ_w Σ |w|, whose gradient is λ·sign(w); |w| = max(w, −w) (at w = 0 the subgradient taken is +λ)."""
    return _penalty(weights, lambda w: ops.mul(ops.maximum(w, ops.neg(w)), float(strength)), "l1_penalty")


def _penalty(weights, elementwise, name):
    """Σ_w Σ elementwise(w): the strength is applied before the sum, so the result stays a 0-d scalar."""
    weights = _as_list(weights)
    if not weights:
        raise GraphError(f"{name}: no weights given")
    total = None
    with weights[0].graph.name_scope(name):
        for w in weights:
            term = ops.sum(elementwise(w))
            total = term if total is None else ops.add(total, term)
    return total


def global_norm(tensors):
    """‖g‖ = √(Σ_i Σ g_i²) over all the tensors together."""
    total = None
    for g in tensors:
        term = ops.sum(ops.mul(g, g))
        total = term if total is None else ops.add(total, term)
    return ops.sqrt(total, name="global_norm")


def clip_by_global_norm(grads, max_norm):
    """g_i ← g_i · c / max(‖g‖, c): rescale all gradients together when their global norm exceeds c.

    The direction of the whole update is kept; only its length is capped. Returns (clipped grads, ‖g‖)."""
    if not max_norm > 0:
        raise GraphError(f"clip_by_global_norm: max_norm must be positive, got {max_norm!r}")
    norm = global_norm(grads)
    scale = ops.div(float(max_norm), ops.maximum(norm, float(max_norm)), name="clip_scale")
    return [ops.mul(g, scale) for g in grads], norm


# ---------------------------------------------------------------------------------------------------------------
# Learning-rate schedules: η_t as a function of the step t = 0, 1, 2, ...

class Schedule:
    def __call__(self, step):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class ConstantRate(Schedule):
    """η_t = η"""

    def __init__(self, learning_rate):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return self.learning_rate


class StepDecay(Schedule):
    """η_t = η₀ · γ^⌊t / step_size⌋: multiply by γ every step_size steps."""

    def __init__(self, initial, step_size, gamma=0.1):
        if step_size < 1:
            raise GraphError(f"StepDecay: step_size must be >= 1, got {step_size!r}")
        self.initial, self.step_size, self.gamma = float(initial), int(step_size), float(gamma)

    def __call__(self, step):
        return self.initial * self.gamma ** (step // self.step_size)


class ExponentialDecay(Schedule):
    """η_t = η₀ · r^(t / decay_steps): multiply by r every decay_steps steps, smoothly.

    The order is (initial, decay_rate, decay_steps), with 0 < decay_rate <= 1. Keras's ExponentialDecay takes
    (initial_learning_rate, decay_steps, decay_rate): ExponentialDecay(0.1, 1000, 0.96) would multiply the rate
    by 1000 every 0.96 steps, so a decay_rate above 1 is refused — pass both by keyword to be unambiguous."""

    def __init__(self, initial, decay_rate, decay_steps=1):
        if not 0 < decay_rate <= 1:
            keras = (f"; if you meant Keras's order (initial, decay_steps, decay_rate), write ExponentialDecay("
                     f"{initial!r}, decay_rate={decay_steps!r}, decay_steps={decay_rate!r})"
                     if 0 < decay_steps <= 1 < decay_rate else "")
            raise GraphError(f"ExponentialDecay: decay_rate must be in (0, 1] (the factor applied every decay_steps "
                             f"steps), got decay_rate={decay_rate!r}, decay_steps={decay_steps!r}{keras}")
        if not decay_steps > 0:
            raise GraphError(f"ExponentialDecay: decay_steps must be > 0, got {decay_steps!r}")
        self.initial, self.decay_rate, self.decay_steps = float(initial), float(decay_rate), float(decay_steps)

    def __call__(self, step):
        return self.initial * self.decay_rate ** (step / self.decay_steps)


class CosineDecay(Schedule):
    """η_t = η_end + (η₀ − η_end) · (1 + cos(π · min(t, T) / T)) / 2: from η₀ down to η_end over T steps."""

    def __init__(self, initial, total_steps, final=0.0):
        if total_steps < 1:
            raise GraphError(f"CosineDecay: total_steps must be >= 1, got {total_steps!r}")
        self.initial, self.total_steps, self.final = float(initial), int(total_steps), float(final)

    def __call__(self, step):
        progress = min(step, self.total_steps) / self.total_steps
        return self.final + (self.initial - self.final) * (1 + math.cos(math.pi * progress)) / 2


class WarmUp(Schedule):
    """Linear warm-up, then another schedule: η_t = after(0) · (t + 1) / W for t < W, else after(t − W).

    Starting small keeps the first updates, made with poor gradient statistics (Adam's moments, batch norm's
    running averages), from throwing the weights far."""

    def __init__(self, after, warmup_steps):
        if warmup_steps < 1:
            raise GraphError(f"WarmUp: warmup_steps must be >= 1, got {warmup_steps!r}")
        self.after = after if callable(after) else ConstantRate(after)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        if step < self.warmup_steps:
            return self.after(0) * (step + 1) / self.warmup_steps
        return self.after(step - self.warmup_steps)


# ---------------------------------------------------------------------------------------------------------------
# Optimizers

def trainable_variables_of(loss):
    """The trainable variables `loss` depends on through differentiable ops, in creation order."""
    seen, stack, found = set(), [loss], []
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op.is_variable:
            if node.attrs["trainable"]:
                found.append(node)
        elif node.op.differentiable:
            stack.extend(node.inputs)
    return sorted(found, key=lambda n: n.id)


class Optimizer:
    """Base class: `minimize` builds the gradients and the state; a subclass writes its rule in `update`."""

    slot_names = ()

    def __init__(self, learning_rate, clip_norm=None, name=None):
        self.schedule = learning_rate if callable(learning_rate) else None
        initial = float(learning_rate(0) if self.schedule else learning_rate)
        if not initial >= 0:
            raise GraphError(f"{type(self).__name__}: the learning rate must be >= 0, got {initial!r}")
        self.initial_learning_rate = initial
        self.clip_norm = clip_norm
        self.name = name or type(self).__name__.lower()
        self.step = None             # t: updates done
        self.learning_rate = None    # η: a scalar variable
        self.slots = {}              # variable -> {slot name: variable}
        self.var_list = []
        self.gradients = []
        self.global_norm = None      # ‖g‖ before clipping, when clip_norm is set
        self.all_reduce = None       # (loss, var_list) -> gradients over every rank (graphnet.distributed)
        self.train_op = None
        self.loss = None

    # -- building --------------------------------------------------------------------------------------------------
    def minimize(self, loss, var_list=None):
        """Add the backward pass and this optimizer's update of `var_list` (default: every trainable variable the
        loss depends on) to the loss's graph; return the train op, whose value is the new step count."""
        site = user_site()
        if self.train_op is not None:
            raise GraphError(f"{self.name}.minimize ({site}): this optimizer already minimizes '{self.loss.name}'; "
                             "make a new optimizer for another loss")
        if not isinstance(loss, Tensor):
            raise GraphError(f"{self.name}.minimize ({site}): the loss must be a tensor, got {type(loss).__name__}")
        var_list = self._checked_var_list(loss, var_list, site)
        graph = loss.graph
        grads = gradients(loss, var_list) if self.all_reduce is None else self.all_reduce(loss, var_list)
        scalar_dtype = "float64" if all(v.dtype == np.float64 for v in var_list) else "float32"
        with graph, graph.phase("update"), graph.name_scope(self.name):
            self.step = self._state_variable(graph, "step", np.zeros((), scalar_dtype))
            self.learning_rate = self._state_variable(graph, "learning_rate",
                                                      np.array(self.initial_learning_rate, scalar_dtype))
            if self.clip_norm is not None:
                grads, self.global_norm = clip_by_global_norm(grads, self.clip_norm)
            t = ops.add(self.step, 1.0, name="t")
            shared = self.prepare(t)
            updates = []
            for var, g in zip(var_list, grads):
                slots = {s: self._slot(graph, var, s) for s in self.slot_names}
                self.slots[var] = slots
                new_value, new_slots = self.update(var, g, slots, shared)
                updates += [ops.assign(slots[s], value, name=f"assign_{slots[s].name}")
                            for s, value in new_slots.items()]
                updates.append(ops.assign(var, new_value, name=f"assign_{var.name}"))
            train_op = ops.assign(self.step, t, name="train_op")
        train_op.side_effects = list(train_op.side_effects) + updates
        self.loss, self.var_list, self.gradients, self.train_op = loss, var_list, grads, train_op
        return train_op

    def _checked_var_list(self, loss, var_list, site):
        if var_list is None:
            var_list = trainable_variables_of(loss)
            if not var_list:
                raise GraphError(f"{self.name}.minimize ({site}): '{loss.name}' depends on no trainable variable "
                                 "(are they all frozen?)")
            return var_list
        var_list = _as_list(var_list)
        checked = []
        for v in var_list:
            if not isinstance(v, Tensor) or not v.op.is_variable:
                raise GraphError(f"{self.name}.minimize ({site}): var_list must hold variables, got {v!r}")
            if not v.attrs["trainable"]:
                raise GraphError(f"{self.name}.minimize ({site}): '{v.name}' is frozen (not trainable): it gets no "
                                 "gradient and no update. Remove it from var_list, or unfreeze it")
            if v not in checked:
                checked.append(v)
        if not checked:
            raise GraphError(f"{self.name}.minimize ({site}): var_list is empty: nothing to train")
        return checked

    def _state_variable(self, graph, name, value):
        var = variable(value, name=name, trainable=False)
        graph.rename(var, f"{self.name}/{name}")
        return var

    def _slot(self, graph, var, slot):
        value = np.full(var.shape, self.slot_initial_value(slot), dtype=var.dtype)
        slot_var = variable(value, name=slot, trainable=False)
        graph.rename(slot_var, f"{self.name}/{var.name}/{slot}")
        return slot_var

    def slot_initial_value(self, slot):
        return 0.0

    def prepare(self, t):
        """Tensors the rule of every variable shares (built once), e.g. Adam's bias corrections."""
        return {}

    def update(self, w, g, slots, shared):
        """The rule: (new value of w, {slot: new value}) as graph tensors."""
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------------------------------------
    def state_variables(self, names=None):
        """{key: variable} of everything a checkpoint must keep: 'step', 'learning_rate', '<var>/<slot>'.
        `names` maps a trained variable to the name to use (default: its graph name)."""
        if self.train_op is None:
            return {}
        state = {"step": self.step, "learning_rate": self.learning_rate}
        for var, slots in self.slots.items():
            var_name = names[var] if names is not None else var.name
            for slot, slot_var in slots.items():
                state[f"{var_name}/{slot}"] = slot_var
        return state

    def update_learning_rate(self, step):
        """Set η for the coming update from the schedule: η = schedule(step). Without a schedule, nothing."""
        if self.schedule is None:
            return self.current_learning_rate()
        value = float(self.schedule(step))
        self.set_learning_rate(value)
        return value

    def set_learning_rate(self, value):
        """Write η (takes effect on the next run; nothing is recompiled)."""
        if self.learning_rate is None:
            self.initial_learning_rate = float(value)
        else:
            self.learning_rate.assign_value(np.full(self.learning_rate.shape, value))

    def current_learning_rate(self):
        return self.initial_learning_rate if self.learning_rate is None else self.learning_rate.numpy().item()

    def steps_done(self):
        return 0 if self.step is None else int(round(self.step.numpy().item()))

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}' lr={self.current_learning_rate():g}>"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (PyTorch's form):

        plain:     w ← w − η·g
        momentum:  v ← μ·v + g,   w ← w − η·v
        Nesterov:  v ← μ·v + g,   w ← w − η·(g + μ·v)     (the gradient step taken from the look-ahead point)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, clip_norm=None, name=None):
        super().__init__(learning_rate, clip_norm, name)
        if not 0 <= momentum < 1:
            raise GraphError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise GraphError("SGD: nesterov=True needs a momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.slot_names = ("velocity",) if momentum else ()

    def update(self, w, g, slots, shared):
        lr = self.learning_rate
        if not self.momentum:
            return ops.sub(w, ops.mul(lr, g)), {}
        v = ops.add(ops.mul(slots["velocity"], self.momentum), g)
        step = ops.add(g, ops.mul(v, self.momentum)) if self.nesterov else v
        return ops.sub(w, ops.mul(lr, step)), {"velocity": v}


class Momentum(SGD):
    """SGD with momentum μ (see SGD)."""

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, clip_norm=None, name=None):
        super().__init__(learning_rate, momentum, nesterov, clip_norm, name)


class Nesterov(SGD):
    """SGD with Nesterov momentum (see SGD)."""

    def __init__(self, learning_rate=0.01, momentum=0.9, clip_norm=None, name=None):
        super().__init__(learning_rate, momentum, True, clip_norm, name)


class Adagrad(Optimizer):
    """Per-weight rates that shrink with the squared gradients seen so far (Duchi et al. 2011):

        G ← G + g²,   w ← w − η·g / (√G + ε)
    """
    slot_names = ("sum_squares",)

    def __init__(self, learning_rate=0.01, eps=1e-10, initial_accumulator=0.0, clip_norm=None, name=None):
        super().__init__(learning_rate, clip_norm, name)
        self.eps, self.initial_accumulator = float(eps), float(initial_accumulator)

    def slot_initial_value(self, slot):
        return self.initial_accumulator

    def update(self, w, g, slots, shared):
        total = ops.add(slots["sum_squares"], ops.mul(g, g))
        step = ops.div(g, ops.add(ops.sqrt(total), self.eps))
        return ops.sub(w, ops.mul(self.learning_rate, step)), {"sum_squares": total}


class RMSprop(Optimizer):
    """Adagrad with a moving average instead of a sum, so rates do not decay to zero (Hinton 2012):

        s ← ρ·s + (1 − ρ)·g²,   w ← w − η·g / (√s + ε)
    """
    slot_names = ("mean_square",)

    def __init__(self, learning_rate=0.001, rho=0.9, eps=1e-8, clip_norm=None, name=None):
        super().__init__(learning_rate, clip_norm, name)
        self.rho, self.eps = float(rho), float(eps)

    def update(self, w, g, slots, shared):
        mean_square = ops.add(ops.mul(slots["mean_square"], self.rho), ops.mul(ops.mul(g, g), 1 - self.rho))
        step = ops.div(g, ops.add(ops.sqrt(mean_square), self.eps))
        return ops.sub(w, ops.mul(self.learning_rate, step)), {"mean_square": mean_square}


class Adam(Optimizer):
    """Momentum and RMSprop together, with the bias of their zero start corrected (Kingma & Ba 2015):

        t ← t + 1
        m ← β₁·m + (1 − β₁)·g              (first moment: mean of g)
        v ← β₂·v + (1 − β₂)·g²             (second moment: mean of g²)
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
        w ← w − η · m̂ / (√v̂ + ε)

    βᵗ is computed in the graph from the step variable as exp(t · ln β).
    """
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8, clip_norm=None, name=None):
        super().__init__(learning_rate, clip_norm, name)
        for what, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 < beta < 1:
                raise GraphError(f"{type(self).__name__}: {what} must be in (0, 1), got {beta!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def prepare(self, t):
        def one_minus_power(beta, name):                 # 1 − βᵗ = 1 − exp(t·ln β)
            return ops.sub(1.0, ops.exp(ops.mul(t, math.log(beta))), name=name)
        return {"bias1": one_minus_power(self.beta1, "bias_correction1"),
                "bias2": one_minus_power(self.beta2, "bias_correction2")}

    def adam_step(self, g, slots, shared):
        m = ops.add(ops.mul(slots["m"], self.beta1), ops.mul(g, 1 - self.beta1))
        v = ops.add(ops.mul(slots["v"], self.beta2), ops.mul(ops.mul(g, g), 1 - self.beta2))
        m_hat = ops.div(m, shared["bias1"])
        v_hat = ops.div(v, shared["bias2"])
        return ops.div(m_hat, ops.add(ops.sqrt(v_hat), self.eps)), {"m": m, "v": v}

    def update(self, w, g, slots, shared):
        step, new_slots = self.adam_step(g, slots, shared)
        return ops.sub(w, ops.mul(self.learning_rate, step)), new_slots


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): the decay is not part of the gradient, so
    Adam's per-weight scaling does not weaken it:

        w ← w − η · (m̂ / (√v̂ + ε) + λ·w)        (m̂, v̂ as in Adam)
    """

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, clip_norm=None,
                 name=None):
        super().__init__(learning_rate, beta1, beta2, eps, clip_norm, name)
        self.weight_decay = float(weight_decay)

    def update(self, w, g, slots, shared):
        step, new_slots = self.adam_step(g, slots, shared)
        step = ops.add(step, ops.mul(w, self.weight_decay))
        return ops.sub(w, ops.mul(self.learning_rate, step)), new_slots


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": Adagrad, "rmsprop": RMSprop,
              "adam": Adam, "adamw": AdamW}


def get(optimizer, **kwargs):
    """An optimizer from a name ('adam') and keyword arguments, or an Optimizer returned as is."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    try:
        return OPTIMIZERS[str(optimizer).lower()](**kwargs)
    except KeyError:
        raise GraphError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}") from None

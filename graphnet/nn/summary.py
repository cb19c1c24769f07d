"""model.summary(): the table a course asks students to fill in by hand.

For each layer: its output shape, its parameter count and how that count comes about, e.g.

    Dense   (n_in + 1) · n_out          a weight per input plus a bias, for each output
    Conv2D  K · (C · R · S + 1)         an R×S filter per input channel plus a bias, for each output channel

and its FLOPs per sample (a multiply-add counts as 2): the sum of its ops' counts at batch size 1, so the
column adds up to the compiled inference program's total. Totals split the parameters into trainable, frozen
(excluded from training by `freeze`) and statistics (batch norm's running mean and variance: updated, not trained).
"""
from ..formatting import format_bytes, format_si
from ..graph import format_shape
from ..op import numel


def _count(n):
    return f"{n:,}"


def format_summary(model, layers):
    """The table of `model`, one row per layer of `layers` (its layers that are not models, in order)."""
    rows = []
    for layer in layers:
        note = "frozen" if layer.frozen else ""
        if not layer.built and layer.output_shape is None:
            note = "not built"
        counts = layer.parameter_counts()
        rows.append((f"{layer.path} ({type(layer).__name__})",
                     format_shape(layer.output_shape) if layer.output_shape is not None else "?",
                     _count(sum(counts.values())),
                     layer.param_formula(),
                     _count(layer.flops) if layer.flops is not None else "?",
                     note))
    header = ("Layer (type)", "Output shape", "Params", "= formula", "FLOPs/sample", "")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    align = ("<", "<", ">", "<", ">", "<")

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    width = len(line(header)) + 2
    input_shape = format_shape(model.input.shape) if model.input is not None else (
        format_shape(layers[0].input_shape) if layers and layers[0].input_shape is not None else "?")
    lines = [f'Model: "{model.name}"   input {input_shape}', "_" * width, line(header), "=" * width]
    lines += [line(r) for r in rows]
    lines.append("=" * width)
    counts = model.parameter_counts()
    total = sum(counts.values())
    nbytes = sum(v.dtype.itemsize * numel(v.shape) for v in model.variables().values())
    # the summary's sizes stop at MiB and its FLOPs at G (program tables go on to GiB and T)
    lines += [f"Total params: {_count(total)} ({format_bytes(nbytes, largest='MiB')})",
              f"  trainable: {_count(counts['trainable'])}",
              f"  frozen: {_count(counts['frozen'])}"
              + (f"  ({', '.join(l.path for l in model.frozen_layers)})" if model.frozen_layers else ""),
              f"  statistics (not trained): {_count(counts['statistics'])}"]
    if model.flops is not None or all(layer.flops is not None for layer in layers):
        # model.flops counts every op of the model's call, also those written there directly (a residual addition,
        # a concatenation) that belong to no layer row above
        flops = model.flops if model.flops is not None else sum(layer.flops for layer in layers)
        lines.append(f"Forward FLOPs per sample: {_count(flops)} ({format_si(flops, 'FLOP', largest='G')})")
        in_layers = sum(layer.flops or 0 for layer in layers)
        if flops != in_layers:
            lines.append(f"  of which in the model's own ops (not in a layer row): {_count(flops - in_layers)}")
    else:
        lines.append("Forward FLOPs per sample: ? (build the inference branch: model.build(input_shape) or "
                     "model(x, training=False))")
    if any(r[5] == "not built" for r in rows):
        lines.append("Layers marked 'not built' get their variables on the model's next call.")
    lines.append("_" * width)
    return "\n".join(lines)

"""Lesson 1 — convolution by hand: what a conv layer computes, how big its output is, and how a filter is learned.

What this teaches:
  * a convolution slides a small filter over an image and, at each position, sums the products of the filter
    with the patch under it — we do it with NumPy loops and check that `gn.conv2d` gives the same numbers
    (deep-learning "convolution" does not flip the filter: it is a cross-correlation);
  * hand-made filters already find structure: vertical and horizontal edges in a photograph;
  * the output size is floor((W − F + 2P) / S) + 1 — the graph works it out while you build it, before any data;
  * a filter is just a variable: gradient descent on a mean squared error recovers a known edge filter from
    nothing but input/output pairs.

    python tutorials/01_convolution_by_hand.py            # the whole lesson (a few seconds)
    python tutorials/01_convolution_by_hand.py --quick    # a smaller photo and fewer steps (CI)
    python tutorials/01_convolution_by_hand.py --epochs 100   # more gradient-descent steps in part 4
"""
# %%
import numpy as np
from tqdm.auto import tqdm

import graphnet as gn
from graphnet.data import sample_image
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=40)
lesson = Lesson(args, "01_convolution_by_hand")
steps = 15 if args.quick else args.epochs        # part 4: gradient-descent steps, each on all the pairs

# %% 1. An 8x8 binary image and a 3x3 filter
image = np.array([[1, 1, 1, 0, 0, 0, 0, 0],
                  [0, 1, 1, 1, 0, 0, 0, 0],
                  [0, 0, 1, 1, 1, 0, 0, 0],
                  [0, 0, 1, 1, 0, 0, 0, 0],
                  [0, 1, 1, 0, 0, 0, 1, 1],
                  [0, 0, 0, 0, 0, 1, 1, 0],
                  [0, 0, 0, 0, 1, 1, 0, 0],
                  [0, 0, 0, 1, 1, 0, 0, 0]], dtype="float32")
kernel = np.array([[1, 0, 1],
                   [0, 1, 0],
                   [1, 0, 1]], dtype="float32")          # an "X" detector


def convolve_by_hand(img, k):
    """Valid cross-correlation: out[i, j] = Σ_u Σ_v img[i + u, j + v] · k[u, v]."""
    out_h, out_w = img.shape[0] - k.shape[0] + 1, img.shape[1] - k.shape[1] + 1
    out = np.zeros((out_h, out_w), dtype=img.dtype)
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = np.sum(img[i:i + k.shape[0], j:j + k.shape[1]] * k)
    return out


patch = image[:3, :3]
print("the top-left 3x3 patch:\n", patch.astype(int))
print("times the filter, element by element:\n", (patch * kernel).astype(int))
print(f"summed: {int((patch * kernel).sum())}  <- the first output value")

by_hand = convolve_by_hand(image, kernel)

# The same with graphnet: a (N, C, H, W) = (1, 1, 8, 8) input and a (K, C, R, S) = (1, 1, 3, 3) filter.
with gn.Graph():
    x = gn.placeholder((1, 1, 8, 8), name="image")
    w = gn.constant(kernel[None, None], name="filter")
    y = gn.conv2d(x, w, name="conv")
by_graph = gn.compile(y, device=args.device).run({x: image[None, None]})[0, 0]
print("feature map by hand (NumPy loops):\n", by_hand.astype(int))
print(f"gn.conv2d gives the same 6x6 map: {np.array_equal(by_hand, by_graph)}; first value {by_graph[0, 0]:g}")
assert by_hand[0, 0] == by_graph[0, 0] == 4 and np.array_equal(by_hand, by_graph)

figure, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, picture, title in zip(axes, (image, kernel, by_hand), ("8x8 image", "3x3 filter", "6x6 feature map")):
    ax.imshow(picture, cmap="viridis")
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])
    for (r, c), value in np.ndenumerate(picture):
        ax.text(c, r, f"{value:g}", ha="center", va="center", color="w", fontsize=8)
axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, edgecolor="red", linewidth=2))
axes[2].add_patch(plt.Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
lesson.save(figure, "by_hand")

# %% 2. Edge filters on a photograph
photo = sample_image("china.jpg", gray=True)             # (H, W) in [0, 1]
if args.quick:
    photo = photo[::4, ::4]
print(f"photo: {photo.shape[0]}x{photo.shape[1]} grey levels")
sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype="float32")     # responds to vertical edges
filters = np.stack([sobel_x, sobel_x.T])[:, None]                            # (2, 1, 3, 3): vertical, horizontal

with gn.Graph():
    x = gn.placeholder((None, 1, None, None), name="photo")                  # any size of image
    edges = gn.conv2d(x, gn.constant(filters, name="filters"), padding=1, name="edges")
maps = gn.compile(edges, device=args.device).run({x: photo[None, None]})[0]
print(f"two filters -> feature maps {maps.shape} (padding 1 keeps the size)")

figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, picture, title in zip(axes, (photo, np.abs(maps[0]), np.abs(maps[1])),
                              ("photo", "|vertical-edge filter|", "|horizontal-edge filter|")):
    ax.imshow(picture, cmap="gray", vmax=np.percentile(picture, 99.5))     # clip the brightest 0.5% for contrast
    ax.set_title(title)
    ax.axis("off")
lesson.save(figure, "edges")

# %% 3. Output sizes: the formula, and the graph's own shape inference
print("\noutput size = floor((W - F + 2P) / S) + 1")
with gn.Graph():
    x = gn.placeholder((None, 3, 32, 32), name="x")
    for f, s, p in ((5, 3, 0), (5, 1, 2), (3, 1, 0), (3, 2, 1)):
        w = gn.variable(np.zeros((8, 3, f, f), "float32"), name="w")
        y = gn.conv2d(x, w, stride=s, padding=p)
        formula = (32 - f + 2 * p) // s + 1
        print(f"  W=32 F={f} S={s} P={p}: ({32} - {f} + 2*{p}) / {s} + 1 = {formula:>2}    graph: {y.shape}")
        assert y.shape[2] == formula == gn.nn.output_size(32, f, s, p)
    try:                                                     # a shape that cannot work fails where it is written
        gn.conv2d(gn.placeholder((None, 1, 4, 4)), gn.variable(np.zeros((1, 1, 5, 5), "float32")))
    except gn.ShapeError as error:
        print(f"  and a 5x5 filter on a 4x4 image is refused at build time:\n    {error}")

# %% 4. Learning a filter: recover the vertical-edge filter from input/output pairs
# The targets are what the "unknown" filter makes of the inputs (computed with the NumPy loops above, not with the
# graph). Starting from zeros, gradient descent on the mean squared error finds the filter. The inputs are white
# noise in [-1, 1]: every direction of the 9 weights is then equally visible to the loss, so plain gradient descent
# converges in a few dozen steps (smooth photo patches would need thousands: their pixels move together).
rng = np.random.default_rng(0)
size, count = (12, 16) if args.quick else (24, 64)
inputs = rng.uniform(-1, 1, size=(count, 1, size, size)).astype("float32")
targets = np.stack([convolve_by_hand(p[0], sobel_x) for p in inputs])[:, None]

learning_rate = 0.5
graph = gn.Graph()
with graph:
    x = gn.placeholder((None, 1, size, size), name="x")
    t = gn.placeholder((None, 1, size - 2, size - 2), name="target")
    w = gn.variable(np.zeros((1, 1, 3, 3), "float32"), name="filter")
    loss = gn.mse(gn.conv2d(x, w, name="conv"), t, name="loss")
    (dw,) = gn.gradients(loss, [w])
    with graph.phase("update"):
        update = gn.assign(w, w - learning_rate * dw)          # w ← w − η·∂loss/∂w
train_step = gn.compile([loss, update], device=args.device)
print("\nthe compiled training step (forward, backward, update):")
print(train_step.describe(batch_size=count))

losses = []
for _ in tqdm(range(steps), desc="learning the filter", unit="step"):
    losses.append(float(train_step.run({x: inputs, t: targets})[0]))
learned = w.numpy()[0, 0]
error = np.abs(learned - sobel_x).max()
print(f"loss {losses[0]:.5f} -> {losses[-1]:.7f} after {steps} steps")
print("learned filter:\n", np.round(learned, 3))

figure, axes = plt.subplots(1, 3, figsize=(11, 3.2))
axes[0].semilogy(losses)
axes[0].set(title="MSE while learning", xlabel="step", ylabel="loss")
for ax, k, title in ((axes[1], sobel_x, "true filter"), (axes[2], learned, "learned filter")):
    ax.imshow(k, cmap="coolwarm", vmin=-2, vmax=2)
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])
    for (r, c), value in np.ndenumerate(k):
        ax.text(c, r, f"{value:.2f}", ha="center", va="center")
lesson.save(figure, "learned_filter")

# %% Result
lesson.finish(losses[0], losses[-1], f"first output {by_graph[0, 0]:g} by hand and by gn.conv2d; "
                                     f"learned filter max |error| {error:.1e} after {steps} steps")


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(width):
    """`width`: the output width of a 5x5 filter with stride 2 and padding 1 on a 28-wide image."""
    import numpy as np
    import graphnet as gn
    with gn.Graph():
        y = gn.conv2d(gn.placeholder((1, 1, 28, 28)), gn.variable(np.zeros((1, 1, 5, 5), "float32")),
                      stride=2, padding=1)
    right = width == y.shape[3]
    print(f"right: floor((28 − 5 + 2·1)/2) + 1 = {y.shape[3]}" if right else
          f"wrong: not {width}; floor((W − F + 2P)/S) + 1 with W=28, F=5, S=2, P=1")
    return right


def check_exercise_2(multiplications):
    """`multiplications`: how many multiplications 8 filters of 3x3 make on one 3x32x32 image, padding 1."""
    import graphnet as gn
    k, c, r, s, h, w = 8, 3, 3, 3, 32, 32
    out_h, out_w = gn.nn.output_size(h, r, 1, 1), gn.nn.output_size(w, s, 1, 1)
    expected = k * out_h * out_w * c * r * s               # one product per filter weight per output value
    right = multiplications == expected
    print(f"right: {k}·{out_h}·{out_w} outputs × {c}·{r}·{s} products each = {expected:,}" if right else
          f"wrong: not {multiplications}; count the output values, then the products each one sums")
    return right


# %% [markdown]
# **Exercise 1 — an output size.** A 5x5 filter with stride 2 and padding 1 slides over a 28x28 image. How wide is
# the output? Work it out with the formula and check: `check_exercise_1(width)`.
#
# **Exercise 2 — the cost of a layer.** Eight 3x3 filters over a 3-channel 32x32 image with padding 1: how many
# multiplications does the layer make for one image? Check: `check_exercise_2(count)`. (The FLOPs column of a
# printed schedule counts each multiply-add as two.)
#
# **Exercise 3 — a filter of your own (no checker: look).** Make a 3x3 filter that responds to diagonal edges,
# apply it to the photo of part 2 and plot the map. Then learn it in part 4 instead of the vertical-edge filter.

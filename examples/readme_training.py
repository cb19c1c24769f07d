"""LeNet-5 with graphnet.nn: summary, Adam with a progress bar, save, reload, freeze the convolutions, new head."""
from graphnet import nn, optim, train
from graphnet.data import shape_images

lenet5 = lambda: nn.Sequential([                                 # noqa: E731
    nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2), nn.Conv2D(16, 5, activation="relu"),
    nn.MaxPool2D(2), nn.Flatten(), nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(7)],
    name="lenet5")

x, y = shape_images(1500, seed=1)                      # noisy 28x28 strokes of 7 kinds: bars, diagonals, rings, ...
model = lenet5()
model.build((1, 28, 28))
model.summary()                                        # output shapes, (n_in+1)·n_out, K·(C·R·S+1), FLOPs
train.Trainer(model, optim.Adam(2e-3)).fit(x, y, epochs=4, batch_size=16, validation_split=0.2)
model.save_weights("lenet5.npz")                       # atomic .npz, loaded without pickle

x2, y2 = shape_images(600, seed=2)                     # a new task: bar (0) / diagonal (1) / closed figure (2)
y2 = (y2 >= 2).astype(int) + (y2 >= 4)
tuned = lenet5()
tuned.build((1, 28, 28))
tuned.load_weights("lenet5.npz")                       # by name: conv1/weight, conv1/bias, ...
tuned.freeze(nn.Conv2D)                                # conv1, conv2: no gradient, no update
tuned.replace("dense3", nn.Dense(3, name="head"))      # a new head for the 3 new classes
history = train.Trainer(tuned, optim.Adam(2e-3)).fit(x2, y2, epochs=3, batch_size=16, validation_split=0.2)
tuned.summary()                                        # frozen: 2,572 (conv1, conv2)
print(f"RESULT fine-tuned validation accuracy {history['val_accuracy'][-1]:.3f}")

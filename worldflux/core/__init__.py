"""The contract every world-model family shares: typed configs, the instantiation gate, the
LightningModule base class and the save/load format."""

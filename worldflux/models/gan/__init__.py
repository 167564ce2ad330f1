"""GameGAN (Kim et al., CVPR 2020): an adversarial, action-conditioned game simulator."""

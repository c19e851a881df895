"""Image classification: CNN zoo, pretrained backbones and fine-tuning."""

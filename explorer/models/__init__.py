"""Importing this package registers every family, in the book's order."""

from explorer.models import lenet, alexnet, vgg, nin, googlenet, resnet, densenet  # noqa: F401, I001

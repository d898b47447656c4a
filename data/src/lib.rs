//! Datasets of the ALI-G toolkit (Berrada, Zisserman, Kumar, ICML 2020): CIFAR-10/100, SVHN, SNLI with
//! GloVe, ImageNet-style folders and the DNC repeat-copy task.
//!
//! Not implemented yet: the readers and loaders arrive with issue #4.

//! Model zoo of the ALI-G toolkit (Berrada, Zisserman, Kumar, "Training Neural Networks for and by
//! Interpolation", ICML 2020): WRN, DenseNet-BC, ResNet-18, the Bi-LSTM NLI encoder and the DNC.
//!
//! Not implemented yet: the models arrive with issues #3 (vision) and #5 (sequence models).

"""The support code of style_transfer.py and fast_style_transfer.py, one module per concern.

The two scripts hold the chapter's method and the fast mode; everything they share that
is not the mathematics lives here, and neither script defines it again:

- runtime: TensorFlow imported lazily, signals, the error types;
- inputs: reading only regular files, decoding images, finding photos;
- outputs: atomic writes, claiming output names, never writing over an input;
- memory: what a run will need and what the machine has;
- vgg_weights: where VGG19's ImageNet weights come from;
- speed: bfloat16 where native, oneDNN, the convolution's input gradient;
- record: the run's books (record, progress line, what is saved however it ends);
- cli: the command-line pieces both scripts use;
- transform_net and training: the fast mode's network fw and how it is trained.

No module here imports either script.
"""

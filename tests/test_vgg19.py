"""The feature extractor: VGG19 built layer by layer."""
import tensorflow as tf

import style_transfer as st
from conftest import seeded_vgg19_weights


def test_avg_pooling_builds_average_pooling_layers():
    extractor = st.build_feature_extractor(seeded_vgg19_weights(), ["block3_conv1"], "avg")
    pools = [layer for layer in extractor.layers if "pool" in layer.name]
    assert len(pools) == 2 and all(
        isinstance(layer, tf.keras.layers.AveragePooling2D) for layer in pools)

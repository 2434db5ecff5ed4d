"""The run: the Evaluator, the L-BFGS drivers, the loop's Iterates, and the figure."""
import dataclasses

import numpy as np
import pytest
from PIL import Image

import style_transfer as st
from conftest import make_style, make_target, seeded_vgg19_weights
from nst import runtime


def quadratic(x):
    """(loss, gradient, parts) of sum(a (x - 1)^2), a from 1 to 10, on float64 vectors."""
    a = np.linspace(1, 10, x.size)
    loss = float(np.sum(a * (x - 1.0) ** 2))
    return loss, 2.0 * a * (x - 1.0), [loss, 0.0, 0.0]


def test_the_evaluator_counts_keeps_the_last_result_and_checks_finiteness():
    evaluator = st.Evaluator(quadratic)
    x = np.zeros(4)
    assert evaluator.starting_loss(x) == (22.0, [22.0, 0.0, 0.0])
    assert evaluator.evaluations == 0  # the start is not one of L-BFGS's evaluations
    loss, grads = evaluator(x)
    assert loss == 22.0 and evaluator.evaluations == 1
    np.testing.assert_allclose(grads, [-2, -8, -14, -20])
    assert evaluator.loss_at(x) == (22.0, [22.0, 0.0, 0.0]) and evaluator.evaluations == 1
    assert evaluator.loss_at(x + 1)[0] == 0.0 and evaluator.evaluations == 2
    for broken in (lambda x: (float("nan"), x, None), lambda x: (1.0, x + np.inf, None)):
        with pytest.raises(runtime.NonFiniteLoss) as stop:
            st.Evaluator(broken)(np.zeros(3))
        assert stop.value.args == (1,)  # the evaluation it happened at


@pytest.mark.parametrize("restarts", [False, True], ids=["continuous", "restarts"])
def test_optimise_reports_each_iteration_once_and_goes_down(restarts):
    evaluator, reports, steps = st.Evaluator(quadratic), [], []
    x0 = np.full(50, 5.0)
    st.optimise(evaluator, x0, 3, 4, restarts,
                lambda i, x, loss, parts, evaluations: reports.append((i, loss, evaluations)),
                steps.append)
    assert [i for i, _, _ in reports] == [1, 2, 3]
    evaluations = [e for _, _, e in reports]
    assert evaluations == sorted(evaluations) and evaluations[-1] <= evaluator.evaluations
    assert reports[-1][1] < 0.5 * quadratic(x0)[0] and steps


def test_the_loop_hands_on_an_iterate_per_iteration_and_keeps_the_latest_image():
    settings = st.LossSettings()
    extractor = st.build_feature_extractor(seeded_vgg19_weights(), settings.layers)
    transfer = st.StyleTransfer(extractor, settings, make_target(), [make_style()], [1.0])
    size, iterates = (85, 64), []
    start = st.preprocess_image(make_target(), st.scaled_size(size, 0.5))
    transfer.run(start, size, [0.5, 1.0], 2, 3, False, iterates.append)
    assert [(i.iteration, i.scale, i.image.shape) for i in iterates] == [
        (0, 0.5, (1, 32, 42, 3)), (1, 0.5, (1, 32, 42, 3)), (2, 0.5, (1, 32, 42, 3)),
        (3, 1.0, (1, 64, 85, 3)), (4, 1.0, (1, 64, 85, 3))]
    evaluations = [i.evaluations for i in iterates]
    assert evaluations[0] == 0 and evaluations == sorted(evaluations) and evaluations[-1] >= 12
    assert iterates[2].loss < iterates[0].loss and iterates[0].parts[0] == 0
    for iterate in iterates:
        assert iterate.loss == pytest.approx(sum(iterate.parts), rel=1e-5)
    assert transfer.image.shape == (1, 64, 85, 3) and transfer.iterate is iterates[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        iterates[0].loss = 0.0


def test_figure_carries_the_loss_curve(tmp_path):
    history = [{"evaluations": e, "loss": 10.0 ** (9 - e / 20), "content": 1e6 * e,
                "style": 10.0 ** (8 - e / 20), "tv": 1e5} for e in (0, 20, 40)]
    pixels = np.zeros((30, 40, 3), np.uint8)
    path = str(tmp_path / "figure.png")
    st.plot_comparison(pixels, [pixels], pixels, history, path)
    figure = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert figure.shape == (600, 960, 3)
    lower = figure[int(0.6 * 600):]
    blue = (np.abs(lower - [31, 119, 180]).sum(axis=-1) < 30).sum()  # the total's line
    assert blue > 200

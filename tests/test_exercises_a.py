"""The exercise checkers of lessons 00–04, 03a and 03b say "right" to a right answer and "wrong" to a wrong one.

A lesson's checkers are the functions `check_exercise_N` of its "Exercises" cell; each imports what it needs, so
they are loaded here from the lesson's source alone (its imports and those functions), without running the lesson.
"""

import numpy as np
import pytest

from lesson_source import checkers


def tanh_backward(d_h, h):
    return d_h * (1 - h ** 2)


def elu_derivative(x):
    return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))


def bce_gradient(z, y):
    return (1 / (1 + np.exp(-z)) - y) / z.size


# (lesson, checker, right answer, wrong answer): the wrong ones are the slips a student makes
CASES = [
    ("00_first_network.py", "check_exercise_1", 61451, 61440),                     # the biases forgotten
    ("00_first_network.py", "check_exercise_2", (None, 16, 14, 14), (None, 16, 10, 10)),
    ("01_convolution_by_hand.py", "check_exercise_1", 13, 12),
    ("01_convolution_by_hand.py", "check_exercise_2", 221184, 2 * 221184),          # FLOPs, not multiplications
    ("02_mlp_regression.py", "check_exercise_1", 1153, 1088),
    ("02_mlp_regression.py", "check_exercise_2", 0.01, 0.1),                         # the noise's std, not its square
    ("03_binary_classification.py", "check_exercise_1", np.log(2), 0.5),
    ("03_binary_classification.py", "check_exercise_2", bce_gradient, lambda z, y: 1 / (1 + np.exp(-z)) - y),
    ("03a_backpropagation_by_hand.py", "check_exercise_1", tanh_backward, lambda d_h, h: d_h * (1 - h)),
    ("03a_backpropagation_by_hand.py", "check_exercise_2", 9, 11),
    ("03a_backpropagation_by_hand.py", "check_exercise_3", lambda p, t: 2 * (p - t) / p.size,
     lambda p, t: 2 * (p - t) / len(p)),                                          # the mean over rows only
    ("03b_activation_functions.py", "check_exercise_1", 0.25, 0.5),
    ("03b_activation_functions.py", "check_exercise_2", elu_derivative, lambda x: np.where(x > 0, 1.0, 0.0)),
    ("04_digits_mlp.py", "check_exercise_1", 167178, 166656),
    ("04_digits_mlp.py", "check_exercise_2", np.log(10), 0.1),
]


@pytest.mark.parametrize("lesson, name, right, wrong", CASES, ids=[f"{c[0][:3]}{c[1][-2:]}" for c in CASES])
def test_a_checker_accepts_the_right_answer_and_refuses_a_wrong_one(lesson, name, right, wrong, capsys):
    check = checkers(lesson)[name]
    assert check(right) is True
    assert capsys.readouterr().out.startswith("right")
    assert check(wrong) is False
    assert capsys.readouterr().out.startswith("wrong")


def test_the_maxout_checker_takes_pieces_that_make_relu_and_refuses_others(capsys):
    check = checkers("03b_activation_functions.py")["check_exercise_3"]
    assert check(slopes=[1, 0], intercepts=[0, 0]) is True
    assert check(slopes=[1, -1], intercepts=[0, 0]) is False                    # |x|, not ReLU
    output = capsys.readouterr().out.splitlines()
    assert output[0].startswith("right") and output[1].startswith("wrong")

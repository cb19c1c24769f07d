"""The exercises of lessons 05, 06, 06a and 07: every checker of its "Exercises" cell says "right" to the right
answer and "wrong" to a wrong one (the form of every lesson's exercises: tests/test_tutorials.py).

A checker is a function check_exercise_<k>(answer...) of the lesson, self-contained (it computes the right answer
from the exercise's numbers and imports what it needs), so the tests take it out of the source and call it without
running the lesson's training — as tests/test_exercises_a.py does for lessons 00–04.
"""

import pytest

from lesson_source import checkers


# (lesson, checker, arguments of a right answer, arguments of a wrong one)
CASES = [
    ("05_lenet5_mnist", "check_exercise_1", (256,), (400,)),                           # with the padding
    ("05_lenet5_mnist", "check_exercise_2", (2416,), (2400,)),                         # the biases forgotten
    ("06_regularization", "check_exercise_1", (-5e-4, -1e-4), (5e-4, 1e-4)),           # the signs
    ("06_regularization", "check_exercise_1", (-5e-4, -1e-4), (-5e-4, -5e-5)),         # L1 halved
    ("06_regularization", "check_exercise_2", (1.25,), (0.8,)),                        # the keep rate
    ("06_regularization", "check_exercise_3", (3200, 1600, 400, 100), (3200, 1600, 100, 400)),  # G and C/G
    ("06a_batch_minibatch_sgd", "check_exercise_1", ((1346, 42, 1),), ((1346, 43, 1),)),  # ⌈n/B⌉: no drop_last
    ("06a_batch_minibatch_sgd", "check_exercise_2", (0.075,), (1.2,)),                # scaled up, not down
    ("07_optimizers", "check_exercise_1", (1.0,), (0.5,)),                             # where y jumps to 0
    ("07_optimizers", "check_exercise_2", ((-6.7, 1.7),), ((-6.79, 0.8),)),           # plain SGD's w − η·g
]


@pytest.mark.parametrize("stem, name, right, wrong", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_a_checker_says_right_to_the_right_answer_and_wrong_to_a_wrong_one(stem, name, right, wrong, capsys):
    check = checkers(stem)[name]
    assert check(*right) is True
    assert capsys.readouterr().out.startswith("right")
    assert check(*wrong) is False
    assert capsys.readouterr().out.startswith("wrong")

import json

import pytest
from conftest import make_mlp

from kd_keras.app import cards
from kd_keras.saving import save_model


def test_card_describes_the_saved_model(tmp_path):
    model = make_mlp(16, "student")
    path = save_model(model, tmp_path / "student.h5")
    card = cards.make_card(
        model,
        path,
        "digits",
        0.91234,
        "kd",
        {"temperature": 4.0},
        7,
        role="student",
    )
    assert card["architecture"] == "Dense(16) > Dense(4)"
    assert card["parameters"] == model.count_params()
    assert card["file_bytes"] == path.stat().st_size
    assert card["test_accuracy"] == 0.9123 and card["seed"] == 7
    assert card["role"] == "student" and card["method"] == "kd"
    written = cards.write_json(cards.card_path(path), card)
    assert written.name == "student.h5.json"
    assert cards.read_card(path) == json.loads(written.read_text())


def test_write_json_refuses_to_overwrite(tmp_path):
    path = cards.write_json(tmp_path / "card.json", {"a": 1})
    with pytest.raises(FileExistsError):
        cards.write_json(path, {"a": 2})
    cards.write_json(path, {"a": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"a": 2}

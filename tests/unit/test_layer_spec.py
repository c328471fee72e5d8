import pytest

from moaw_core.engine.layer_spec import parse_layer_spec

LAYERS = [f"block.{i}" for i in range(6)]


class Scores:
    def top_k(self, k, by="probe"):
        order = {"probe": ["block.4", "block.1", "block.2"], "fisher": ["block.0", "block.5", "block.4"]}[by]
        return order[:k]


def test_names_ranges_all_and_order():
    assert parse_layer_spec("block.3, block.1", LAYERS) == ["block.1", "block.3"]
    assert parse_layer_spec("block.2-4", LAYERS) == ["block.2", "block.3", "block.4"]
    assert parse_layer_spec("block.2..3,block.3", LAYERS) == ["block.2", "block.3"]
    assert parse_layer_spec("all", LAYERS) == LAYERS


def test_top_k_uses_scores_and_column():
    assert parse_layer_spec("top-2", LAYERS, Scores()) == ["block.1", "block.4"]
    assert parse_layer_spec("top2:fisher", LAYERS, Scores()) == ["block.0", "block.5"]


@pytest.mark.parametrize("spec, match", [
    ("", "empty"),
    ("   ", "empty"),
    ("block.9", "unknown layer 'block.9'"),
    ("block.4-9", "unknown layers"),
    ("block.4-2", "reversed"),
    ("top-3", "score table"),
    (",", "selects no layer"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_layer_spec(spec, LAYERS)


def test_top_k_from_another_model_is_an_error():
    with pytest.raises(ValueError, match="another model"):
        parse_layer_spec("top-1", ["double.0"], Scores())


@pytest.mark.parametrize("spec, match", [
    ("block.0-1000000", "999995 of 1000001 missing, first block.6"),
    ("block.0-" + "9" * 30, "index too large"),
    ("double.0-3", "no 'double.N' layers"),
    ("block." + "1" * 9000, "unknown layer"),
    ("block.0," * 2000, "characters long"),
    ("top-" + "9" * 30, "k must be between"),
])
def test_absurd_specs_are_refused_with_short_messages(spec, match):
    with pytest.raises(ValueError, match=match) as err:
        parse_layer_spec(spec, LAYERS, Scores())
    assert len(str(err.value)) < 300  # the old message listed every missing name: 16 MB for block.0-1000000

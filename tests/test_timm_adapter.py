"""Issue 22 (hosts): timm refuses the arguments it cannot honour and describes an SR model in pretrained_cfg."""

from __future__ import annotations

import pytest

timm = pytest.importorskip("timm")

import dan_blocks.timm  # noqa: E402,F401


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features_only": True}, "features_only=True is not supported: .*no feature pyramid"),
        ({"out_indices": (1, 2)}, "out_indices=.* is not supported"),
        ({"in_chans": 1}, "in_chans=1 is not supported: DAN restores RGB"),
        ({"num_classes": 10}, "num_classes=10 is not supported: .*no classifier"),
        ({"drop_path_rate": 0.1}, "drop_path_rate=0.1 is not supported"),
    ],
)
def test_arguments_it_cannot_honour_are_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match="timm model dan_v2_x4: " + match):
        timm.create_model("dan_v2_x4", **kwargs)


def test_pretrained_cfg_describes_an_sr_model() -> None:
    model = timm.create_model("dan_v1_x3", nf=16, nb=1, in_chans=3, num_classes=None)  # neutral values pass
    assert model.scale == 3 and model.pretrained_cfg["scale"] == 3
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["input_size"] != (3, 224, 224)  # not ImageNet's defaults
    assert cfg["mean"] == (0.0, 0.0, 0.0) and cfg["std"] == (1.0, 1.0, 1.0)  # images in [0, 1], unnormalised
    assert cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bicubic"
    registered = timm.models.get_pretrained_cfg("dan_v2_x4")
    assert registered.mean == (0.0, 0.0, 0.0) and registered.num_classes == 0

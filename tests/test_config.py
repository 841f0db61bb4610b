"""Configuration: reference defaults, validation, dict input, TileDB key mapping, no secrets."""

from __future__ import annotations

import json
import os

import pytest

import radiobject as ro
from radiobject import (
    CompressionConfig,
    Compressor,
    ConfigurationError,
    OrientationConfig,
    ReadConfig,
    S3Config,
    SliceOrientation,
    TileConfig,
    WriteConfig,
    configure,
    get_radiobject_config,
)


def test_defaults_match_the_reference():
    cfg = get_radiobject_config()
    assert cfg.read == ReadConfig(memory_budget_mb=1024, tile_cache_size_mb=512, concurrency=4, max_workers=4)
    assert (cfg.s3.region, cfg.s3.endpoint, cfg.s3.use_virtual_addressing) == ("us-east-1", None, True)
    assert (cfg.s3.max_parallel_ops, cfg.s3.multipart_part_size_mb) == (8, 50)
    assert cfg.write.tile == TileConfig(orientation=SliceOrientation.AXIAL, x=None, y=None, z=None, t=1)
    assert cfg.write.compression == CompressionConfig(algorithm=Compressor.ZSTD, level=3)
    assert cfg.write.orientation == OrientationConfig(
        auto_detect=True, canonical_target="RAS", reorient_on_load=False, store_original_affine=True
    )


def test_the_python_sections_are_views_of_the_native_model():
    """Every field the native model has, and no other, with the native defaults."""
    import dataclasses

    from radiobject import RadiObjectConfig
    from radiobject import _radiobject as _rb

    native = json.loads(_rb.validate_config("{}"))

    def fields(section: object) -> dict:
        return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}  # type: ignore[arg-type]

    python = RadiObjectConfig()
    assert python.model_dump() == native
    for name, section in fields(python).items():
        assert set(fields(section)) == set(native[name]), name
        for sub, value in fields(section).items():
            if dataclasses.is_dataclass(value):
                assert set(fields(value)) == set(native[name][sub]), f"{name}.{sub}"


def test_configure_replaces_sections_and_rebuilds_the_global_context():
    before = ro.get_tiledb_ctx()
    assert ro.get_tiledb_ctx() == before  # stable until configure
    configure(
        read=ReadConfig(max_workers=8, concurrency=2, memory_budget_mb=2048, tile_cache_size_mb=64),
        s3=S3Config(max_parallel_ops=32, multipart_part_size_mb=100),
        write=WriteConfig(tile=TileConfig(orientation=SliceOrientation.ISOTROPIC)),
    )
    cfg = get_radiobject_config()
    assert cfg.read.max_workers == 8 and cfg.s3.max_parallel_ops == 32
    assert cfg.write.tile.orientation is SliceOrientation.ISOTROPIC
    after = ro.get_tiledb_ctx()
    assert after != before and after.id != before.id
    assert json.loads(after.config_json())["read"]["max_workers"] == 8
    configure(read={"max_workers": 2})  # a plain dict (Hydra/OmegaConf style); other fields default
    assert get_radiobject_config().read == ReadConfig(max_workers=2)
    assert get_radiobject_config().s3.max_parallel_ops == 32  # untouched section kept


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReadConfig(memory_budget_mb=10),
        lambda: ReadConfig(concurrency=0),
        lambda: ReadConfig(concurrency=65),
        lambda: ReadConfig(max_workers=33),
        lambda: CompressionConfig(algorithm=Compressor.GZIP, level=15),
        lambda: CompressionConfig(algorithm="lz4", level=17),
        lambda: CompressionConfig(level=23),
        lambda: CompressionConfig(algorithm="brotli"),
        lambda: OrientationConfig(canonical_target="RPI"),
        lambda: TileConfig(x=0),
        lambda: TileConfig(orientation="diagonal"),
        lambda: S3Config(multipart_part_size_mb=4),
        lambda: S3Config(endpoint="ftp://host:21"),
        lambda: S3Config(endpoint="http://"),  # used to fall back to real AWS silently
        lambda: S3Config(endpoint="not a url"),  # used to be accepted until the first request
        lambda: S3Config(endpoint="http://127.0.0.1:port"),
        lambda: S3Config(scheme="gopher"),
        lambda: configure(read={"max_wrokers": 8}),
        lambda: configure(write={"compression": {"algorithm": "gzip", "level": 12}}),
    ],
)
def test_invalid_values_raise_configuration_error_and_change_nothing(make):
    configure(read=ReadConfig(max_workers=3))
    ctx = ro.get_tiledb_ctx()
    with pytest.raises(ConfigurationError) as e:
        make()
    assert isinstance(e.value, ValueError)
    assert get_radiobject_config().read.max_workers == 3
    assert ro.get_tiledb_ctx() == ctx


def test_valid_level_ranges_per_algorithm():
    for algo, top in [("zstd", 22), ("lz4", 16), ("gzip", 9)]:
        configure(write=WriteConfig(compression=CompressionConfig(algorithm=algo, level=top)))
        assert get_radiobject_config().write.compression.level == top
        configure(write={"compression": {"algorithm": algo, "level": -1}})


def test_tiledb_keys_that_act_in_2_30():
    configure(
        read=ReadConfig(memory_budget_mb=256, concurrency=3),
        s3=S3Config(
            endpoint="http://127.0.0.1:9999", use_virtual_addressing=False, region="eu-west-1", max_parallel_ops=16
        ),
    )
    p = get_radiobject_config().tiledb_params()
    mib = 1024 * 1024
    assert p["sm.mem.total_budget"] == str(256 * mib)  # refactored readers
    assert p["sm.memory_budget"] == str(256 * mib)  # legacy readers
    assert p["sm.compute_concurrency_level"] == p["sm.io_concurrency_level"] == "3"
    assert p["vfs.min_batch_size"] == "0" and p["vfs.min_batch_gap"] == "0"  # no over-read
    assert p["vfs.s3.endpoint_override"] == "127.0.0.1:9999" and p["vfs.s3.scheme"] == "http"
    assert p["vfs.s3.region"] == "eu-west-1" and p["vfs.s3.use_virtual_addressing"] == "false"
    assert p["vfs.s3.max_parallel_ops"] == "16" and p["vfs.s3.multipart_part_size"] == str(50 * mib)
    assert "sm.tile_cache_size" not in p  # does not exist in TileDB 2.30: our cache implements it
    tcfg = ro.get_tiledb_config()
    assert tcfg["vfs.s3.region"] == "eu-west-1"  # a real tiledb.Config


def test_credentials_are_never_stored_or_shown(monkeypatch):
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    configure(s3=S3Config(region="us-west-2"))
    cfg = get_radiobject_config()
    ctx = ro.Context(cfg)
    shown = " ".join(
        [
            repr(cfg),
            repr(cfg.s3),
            json.dumps(cfg.model_dump()),
            repr(ctx),
            ctx.config_json(),
            json.dumps(cfg.tiledb_params()),
        ]
    )
    assert secret not in shown and "AKIAIOSFODNN7EXAMPLE" not in shown
    assert not any("secret" in k or "access_key" in k or "session_token" in k for k in cfg.tiledb_params())
    with pytest.raises(ro.RadiObjectError) as e:
        ro.Volume(
            "s3://no-such-bucket-radiobject/vol",
            ctx=ro.Context(
                {"s3": {"endpoint": "http://127.0.0.1:9", "connect_max_tries": 1, "request_timeout_ms": 200}}
            ),
        )
    assert secret not in str(e.value)
    os.environ.get("AWS_SECRET_ACCESS_KEY")  # still only in the environment


def test_reference_style_objects_are_accepted():
    class FakePydantic:  # what the reference's pydantic models offer
        def model_dump(self):
            return {"memory_budget_mb": 512, "tile_cache_size_mb": 16, "concurrency": 2, "max_workers": 2}

    configure(read=FakePydantic())
    assert get_radiobject_config().read == ReadConfig(512, 16, 2, 2)
    copy = get_radiobject_config().read.model_copy(update={"max_workers": 5})
    assert copy.max_workers == 5 and copy.concurrency == 2
    assert ro.RadiObjectConfig.from_json(json.dumps(get_radiobject_config().model_dump())) == get_radiobject_config()


def test_reset_restores_defaults():
    configure(read=ReadConfig(max_workers=7))
    ro.reset_radiobject_config()
    assert get_radiobject_config() == ro.RadiObjectConfig()

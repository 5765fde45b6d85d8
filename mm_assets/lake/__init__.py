"""The data lake: any fsspec URI (a local folder by default, ``abfs://`` on ADLS Gen2), Parquet via pyarrow."""

from mm_assets.lake.lake import Lake, LakePathError

__all__ = ["Lake", "LakePathError"]

"""Datasets: IDX file handling and Lightning DataModules."""

__all__: list[str] = []

"""Datasets: IDX file handling and Lightning DataModules."""

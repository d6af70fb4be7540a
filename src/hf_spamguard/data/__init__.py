"""Listing datasets: TSV validation, image fetching, the `datasets` builder, Hub layout, demo data."""

"""The foundation every capability builds on: the metric catalog, the platform's scrape jobs,
deterministic output, links, and the exporter runtime. Imports nothing of medobs but this package."""

"""What the pages and the CLI show, computed from configs, summaries and runs: tables, charts, the
diagram, a run's views and the Inside views. Library code: it returns data and figures, it draws nothing."""

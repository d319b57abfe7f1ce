"""Reports on top of the rollups and findings: the weekly report (weekly.py figures,
render.py/pdf.py/charts.py output, mail.py sending, schedule.py the service's job) and
the commitment's progress (commitment.py)."""

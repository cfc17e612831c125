"""Analytics Automated's REST API, answered by Sluice (see docs/migrating-from-aa.md, "The A_A REST API").

A_A's clients (its ``example_scripts/send_file.py``, the PSIPRED web front end
and scripts written against ``/analytics_automated/``) keep working unchanged:
the same URLs, form fields, status codes, field names, state names and error
bodies. Submissions made here are ordinary Sluice submissions, accepted by
``execution.intake`` exactly as ``/api/submissions/`` accepts them.
"""

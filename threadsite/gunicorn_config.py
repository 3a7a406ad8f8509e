"""gunicorn's settings for the web service (the Dockerfile and docker-compose.yml start it with
`gunicorn --config python:threadsite.gunicorn_config threadsite.wsgi`). Each is read from the environment.

Threads, not only processes: a page whose API call is slow holds one thread until its deadline
(OPENAI_WEB_DEADLINE, 10 s), and the list and the overview go on being served by the others. The worker
timeout stays well above that deadline, so no worker is killed for waiting on the API.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Recycle workers now and then, so that a slow leak never grows without bound.
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"

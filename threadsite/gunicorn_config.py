"""gunicorn's settings for the web service (the Dockerfile and docker-compose.yml start it with
`gunicorn --config python:threadsite.gunicorn_config threadsite.wsgi`). Each is read from the environment.

Threads, not only processes: a page whose API call is slow holds one thread until its deadline
(OPENAI_WEB_DEADLINE, 10 s), and the list and the overview go on being served by the others. The worker
timeout stays well above that deadline, so no worker is killed for waiting on the API.

The capture proxy (/proxy/v1/) is served by the same settings with more threads (docker-compose.yml's
`capture` service: GUNICORN_THREADS=160): a streamed answer holds its thread for its whole length, blocked
on a socket read that releases the GIL, and gthread's main loop (not a thread) keeps idle keep-alive
connections, so threads are spent only on requests in progress. THREADSITE_PROXY_MAX_STREAMS keeps 8 of
them for everything that is not a stream (README: "Serving the capture proxy").
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Recycle workers now and then, so that a slow leak never grows without bound.
# Not for the capture service (GUNICORN_MAX_REQUESTS=0): a worker recycled while it passes streams on stops
# taking requests until they end, or cuts those that outlast graceful_timeout.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
accesslog = "-"

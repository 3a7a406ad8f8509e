# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY threadsite threadsite
COPY threads_app threads_app
RUN pip install --no-cache-dir .

COPY manage.py ./
COPY templates templates
COPY static static
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --system --uid 1000 threadsite
USER threadsite
EXPOSE 8000
CMD ["gunicorn", "--config", "python:threadsite.gunicorn_config", "threadsite.wsgi"]

"""Register every thread and conversation the official `openai` client creates with Threadsite, without
putting a proxy in the path: an httpx response hook that posts each new ID to Threadsite's REST API.

Copy this file into your application, then:

    import openai
    from openai_register_hook import registering_http_client

    client = openai.OpenAI(http_client=registering_http_client(
        threadsite_url="https://threadsite.example.com", token=os.environ["THREADSITE_TOKEN"]))
    client.conversations.create(extra_headers={"X-Threadsite-End-User": "cust-42"})  # registered

Fail-open: a registration runs on a background thread after your call has its answer, so Threadsite being
slow or down never delays or breaks a call to OpenAI; a failed registration is logged with the ID (at
WARNING), to register it later. The token needs the `register` scope and a credential (or name one in
`credential=`). Streamed thread-and-run creations (`threads.create_and_run(stream=True)`) are not seen:
their ID is inside the stream, which the hook must not read.
"""

import json
import logging
import threading
import urllib.request

import openai

logger = logging.getLogger("threadsite.register")

# POST paths whose answer carries the ID of a new thread or conversation, and the field that holds it.
CREATES = {"/threads": "id", "/threads/runs": "thread_id", "/conversations": "id"}
END_USER_HEADER = "X-Threadsite-End-User"


class Registrar:
    """The hook itself: `registrar(response)` for each answer the client receives."""

    def __init__(self, threadsite_url: str, token: str, *, credential: str = "", timeout: float = 5.0):
        self.url = threadsite_url.rstrip("/") + "/api/v1/threads"
        self.token = token
        self.credential = credential
        self.timeout = timeout
        self.pending: list[threading.Thread] = []

    def __call__(self, response) -> None:
        try:
            request = response.request
            field = next((f for p, f in CREATES.items() if request.url.path.endswith(p)), None)
            if request.method != "POST" or field is None or not 200 <= response.status_code < 300:
                return
            if not response.headers.get("content-type", "").startswith("application/json"):
                return  # a stream: reading it here would take it from the application
            response.read()
            remote_id = response.json().get(field)
            if not isinstance(remote_id, str):
                return
            entry = {"id": remote_id}
            if self.credential:
                entry["credential"] = self.credential
            if request.headers.get(END_USER_HEADER):
                entry["end_user"] = request.headers[END_USER_HEADER]
        except Exception:  # never let registration break the application's call
            logger.warning("Threadsite: could not read a created ID from %s", response.request.url.path)
            return
        worker = threading.Thread(target=self._register, args=(entry,), daemon=True)
        self.pending = [t for t in self.pending if t.is_alive()] + [worker]
        worker.start()

    def _register(self, entry: dict) -> None:
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's Threadsite
            self.url,
            data=json.dumps(entry).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):  # noqa: S310
                pass
        except Exception as error:
            logger.warning("Threadsite: %s was not registered (%s); register it later", entry["id"], error)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for the registrations under way (at exit, or in tests)."""
        for worker in list(self.pending):
            worker.join(timeout)


def registering_http_client(threadsite_url: str, token: str, **options):
    """The official client's own httpx client, with the registering hook; `.registrar` is the hook."""
    registrar = Registrar(threadsite_url, token, **options)
    client = openai.DefaultHttpxClient(event_hooks={"response": [registrar]})
    client.registrar = registrar
    return client

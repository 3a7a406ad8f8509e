import signal

from django.core.management.base import BaseCommand, CommandError

from threads_app.simulator import SimulatorConfig, SimulatorState, seed_demo
from threads_app.simulator.app import mask
from threads_app.simulator.config import FAULTS, HOSTILE_FAULTS
from threads_app.simulator.server import make_server


class Command(BaseCommand):
    help = (
        "Serve the offline simulator of the OpenAI thread APIs (Assistants threads, Conversations, "
        "ChatKit threads) until Ctrl-C. Point a credential's base URL at the address it prints."
    )
    # The simulator is a standalone WSGI app: it needs neither the database nor Django's checks.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--latency-ms", type=int, default=0, help="Delay before every answer.")
        parser.add_argument(
            "--rate-limit", type=int, default=0, help="Requests per minute per project; 0 turns it off."
        )
        parser.add_argument(
            "--fault-rate", type=float, default=0.0, help="Share of requests answered 500, 503 or 502 (0-1)."
        )
        parser.add_argument(
            "--drop-rate", type=float, default=0.0, help="Share of connections closed unanswered (0-1)."
        )
        parser.add_argument(
            "--drop-after-rate",
            type=float,
            default=0.0,
            help="Share of requests carried out whose connection is then closed unanswered (0-1).",
        )
        parser.add_argument(
            "--hostile-rate",
            type=float,
            default=0.0,
            help=(
                f"Share of requests answered with a hostile fault picked at random (0-1): "
                f"{', '.join(HOSTILE_FAULTS)}."
            ),
        )
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="FAULT",
            help=(
                "Answer the first requests with these faults, one per request, in order; repeat for more. "
                f"One of {', '.join(FAULTS)} or slow:SECONDS. Hostile ones: slow_body (a 200 whose body "
                "comes a byte at a time), no_headers (never answers), huge_body (a 200 JSON far over 20 MB), "
                "echo_key (a 200 quoting the request's key), endless_list (a list that always has more; "
                "paging on stays endless), bad_ids (the ChatKit list adds malformed IDs and 200 metadata "
                "pairs)."
            ),
        )
        parser.add_argument(
            "--drip-interval", type=float, default=1.0, help="Seconds between the bytes of a slow_body."
        )
        parser.add_argument(
            "--huge-body-mb", type=int, default=64, help="Megabytes (MiB) a huge_body answer sends."
        )
        parser.add_argument(
            "--key",
            action="append",
            default=[],
            metavar="KEY=PROJECT",
            help="Accept this API key for this project; repeat for more keys.",
        )
        parser.add_argument(
            "--seed-demo", action="store_true", help="Fill two demo projects and print their keys."
        )
        parser.add_argument(
            "--stream-first-token-ms",
            type=int,
            default=300,
            help="A streamed response (POST /responses, stream: true): the wait before its first token.",
        )
        parser.add_argument(
            "--stream-token-ms", type=int, default=30, help="A streamed response: the wait between tokens."
        )
        parser.add_argument("--seed", type=int, default=None, help="Make random faults repeatable.")
        parser.add_argument("--quiet", action="store_true", help="Do not log each request.")

    def handle(self, *args, **options):
        try:
            config = SimulatorConfig(
                latency_ms=options["latency_ms"],
                rate_limit_per_minute=options["rate_limit"],
                fault_rate=options["fault_rate"],
                drop_rate=options["drop_rate"],
                drop_after_rate=options["drop_after_rate"],
                hostile_rate=options["hostile_rate"],
                drip_interval=options["drip_interval"],
                huge_body_bytes=options["huge_body_mb"] * 1024 * 1024,
                seed=options["seed"],
                stream_first_token_ms=options["stream_first_token_ms"],
                stream_token_ms=options["stream_token_ms"],
            )
            state = SimulatorState(seed=options["seed"])
            state.enqueue_faults(*options["fault"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        keys = [self._parse_key(value) for value in options["key"]]
        for api_key, project_id in keys:
            state.add_key(api_key, project_id)
        try:
            server = make_server(
                options["host"], options["port"], state, config, verbose=not options["quiet"]
            )
        except OSError as error:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {error}") from None

        base_url = f"http://{options['host']}:{server.server_address[1]}/v1"
        self.stdout.write(f"Simulator serving {base_url} (Ctrl-C to stop)")
        for api_key, project_id in keys:
            self.stdout.write(f"  key {mask(api_key)} → project {project_id}")
        if options["seed_demo"]:
            for project in seed_demo(state):
                # Demo keys are the simulator's own made-up keys, printed so that they can be pasted
                # into a credential; they open nothing anywhere else.
                self.stdout.write(
                    f"  {project['name']}: key {project['api_key']} project {project['project_id']} "
                    f"organization {project['organization_id']}, {len(project['remote_ids'])} threads"
                )
        # Ctrl-C, and SIGTERM (docker stop, kill), stop it cleanly: even started as a script's background job,
        # which inherits SIGINT ignored, or as a container's first process, which has no default for SIGTERM.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.default_int_handler)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Simulator stopped.")
        finally:
            server.server_close()

    def _parse_key(self, value: str) -> tuple[str, str]:
        api_key, _, project_id = value.partition("=")
        if not api_key.strip() or not project_id.strip():
            raise CommandError("--key takes KEY=PROJECT, e.g. --key sk-sim-mine=proj_mine")
        return api_key.strip(), project_id.strip()

"""The demo: the offline simulator seeded with a few hundred threads of all three kinds in two projects,
their credentials registered, the threads imported (and the ChatKit ones discovered) and assigned to a
few team members, and the dashboard served with in-process background workers. Ctrl-C stops it all."""

import itertools

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.text import slugify

from threads_app import importing, retention, sync, team
from threads_app.models import Credential, RetentionPolicy, Thread
from threads_app.simulator import SimulatorConfig, SimulatorState, running_simulator, seed_demo

USERS = [
    # username, password, role, superuser
    ("admin", "admin", "admin", True),
    ("alice", "alice", "member", False),
    ("bob", "bob", "member", False),
    ("carol", "carol", "member", False),
    ("auditor", "auditor", "auditor", False),
]
OWNERS = ["alice", "bob", "carol", None]


class Command(BaseCommand):
    help = "Run the dashboard on demo data served by the offline simulator."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--latency-ms", type=int, default=150, help="Simulated API latency.")
        parser.add_argument("--threads-per-kind", type=int, default=100)
        parser.add_argument("--no-serve", action="store_true", help="Seed, print, and exit (for tests).")

    def handle(self, *args, host, port, latency_ms, threads_per_kind, no_serve, **options):
        call_command("migrate", "--noinput", verbosity=0)
        state = SimulatorState()
        worlds = seed_demo(state, threads_per_kind=threads_per_kind)
        with running_simulator(SimulatorConfig(latency_ms=0), state) as simulator:
            users = self.ensure_users()
            summary = self.load(worlds, simulator.base_url, users)
            simulator.config.latency_ms = latency_ms
            self.stdout.write(self.style.SUCCESS("Threadsite demo"))
            for line in summary:
                self.stdout.write(f"  {line}")
            self.stdout.write(f"  simulator: {simulator.base_url} ({latency_ms} ms latency)")
            self.stdout.write(f"  dashboard: http://{host}:{port}/  sign in as admin / admin")
            self.stdout.write("  members: alice / alice, bob / bob, carol / carol; auditor / auditor")
            if no_serve:
                return
            call_command("runserver", f"{host}:{port}", use_reloader=False, use_threading=True)

    def ensure_users(self):
        User = get_user_model()
        users = {}
        for username, password, role, superuser in USERS:
            defaults = {"is_superuser": superuser}
            user, created = User.objects.get_or_create(username=username, defaults=defaults)
            if created:
                user.set_password(password)
                user.save()
                team.set_role(user, role)
            users[username] = user
        return users

    @transaction.atomic
    def load(self, worlds, base_url, users):
        lines = []
        owners = itertools.cycle(OWNERS)
        for world in worlds:
            # Credential names are typed in commands, so no spaces: "Support bot" → "support-bot".
            name = slugify(world["name"])
            credential = Credential.objects.filter(name=name).first() or Credential(name=name)
            credential.base_url = base_url
            credential.api_key = world["api_key"]
            credential.organization_id = world["organization_id"]
            credential.project_id = world["project_id"]
            credential.created_by = users["admin"]
            credential.save()
            # The simulator starts afresh each run; so do the demo credentials' threads.
            Thread.objects.filter(credential=credential).delete()
            sync.verify_credential(credential)
            # ChatKit threads can be listed, so they come in by discovery; the others by import.
            discovered = sync.discover(credential, added_by=users["admin"])
            imported = [remote_id for remote_id in world["remote_ids"] if not remote_id.startswith("cthr_")]
            for owner, chunk in zip(owners, _chunks(imported, 25), strict=False):
                importing.import_threads(
                    "\n".join(chunk),
                    credential=credential,
                    owner=users[owner] if owner else None,
                    added_by=users["admin"],
                )
            for thread, owner in zip(
                Thread.objects.filter(credential=credential, source=Thread.Source.DISCOVERY),
                owners,
                strict=False,
            ):
                Thread.objects.filter(pk=thread.pk).update(owner=users[owner] if owner else None)
            checked = sync.check_unchecked(credential)
            if not lines:
                # One credential flags its idle conversations and ChatKit threads, to show retention.
                retention.set_policy(credential, mode=RetentionPolicy.Mode.FLAG, window_days=60)
            lines.append(
                f"{credential.name} ({credential.project_id}, key {credential.masked_key}): "
                f"{len(imported)} imported, {discovered.added} discovered; {checked.summary()}"
            )
        return lines


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]

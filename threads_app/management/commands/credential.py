"""Manage API credentials. The key is read from an environment variable or a prompt, never from the
command line, where it would land in shell history and in `ps` output."""

import getpass
import os

from django.core.management.base import BaseCommand, CommandError

from threads_app import credentials, sync
from threads_app.forms import CredentialForm
from threads_app.management.actors import add_actor_argument, resolve_actor
from threads_app.models import Credential


class Command(BaseCommand):
    help = "Add, list, verify or remove API credentials (org/project keys)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Register a credential.")
        add.add_argument("name")
        add.add_argument("--base-url", default="", help="API base URL (default: OpenAI's).")
        add.add_argument("--organization", default="", help="OpenAI organization ID (org-…).")
        add.add_argument("--project", default="", help="OpenAI project ID (proj_…).")
        add.add_argument("--azure-api-version", default="", help="Azure OpenAI api-version, if Azure.")
        add.add_argument(
            "--key-env",
            default="OPENAI_API_KEY",
            help="Environment variable holding the key (default OPENAI_API_KEY); prompts if it is unset.",
        )
        add.add_argument(
            "--read-key-env",
            default="",
            help="Environment variable holding an optional read-only (restricted) key for browsing, checks.",
        )
        add.add_argument(
            "--requests-per-minute",
            type=int,
            help="The project's request limit (default: learned from the API).",
        )
        add.add_argument(
            "--concurrency",
            type=int,
            default=16,
            help="Requests in flight at once for a job or check, shared by its workers (16).",
        )
        add.add_argument("--no-verify", action="store_true", help="Do not ask the API whether the key works.")
        add_actor_argument(add)
        sub.add_parser("list", help="List credentials with masked keys.")
        verify = sub.add_parser("verify", help="Ask the API whether a credential's key works.")
        verify.add_argument("name")
        remove = sub.add_parser("remove", help="Remove a credential that tracks no threads.")
        remove.add_argument("name")
        add_actor_argument(remove)

    def handle(self, *args, action, **options):
        getattr(self, f"handle_{action}")(**options)

    def handle_add(
        self,
        name,
        base_url,
        organization,
        project,
        azure_api_version,
        key_env,
        read_key_env,
        no_verify,
        requests_per_minute,
        concurrency,
        actor=None,
        **_,
    ):
        by = resolve_actor(actor)
        key = os.environ.get(key_env, "")
        if not key:
            if not self.stdin_is_tty():
                raise CommandError(f"Set {key_env} to the API key (the key is never taken as an argument).")
            key = getpass.getpass(f"API key for {name}: ")
        form = CredentialForm(
            data={
                "name": name,
                "base_url": base_url or Credential._meta.get_field("base_url").default,
                "organization_id": organization,
                "project_id": project,
                "azure_api_version": azure_api_version,
                "requests_per_minute": requests_per_minute or "",
                "concurrency": concurrency,
                "api_key": key,
                "read_key": os.environ.get(read_key_env, "") if read_key_env else "",
            }
        )
        if read_key_env and not form.data["read_key"]:
            raise CommandError(
                f"{read_key_env} is unset: set it to the read-only key, or leave --read-key-env out."
            )
        if not form.is_valid():
            raise CommandError(_form_errors(form))
        credential, _ = credentials.save(form, by=by)
        read = f", read-only {credential.masked_read_key}" if credential.read_key_last4 else ""
        self.stdout.write(f"Added credential {credential.name} ({credential.masked_key}{read}).")
        if not no_verify:
            ok, message = sync.verify_credential(credential)
            self.stdout.write(message)
            if not ok:
                raise CommandError(f"{credential.name} was added but its key does not work yet.")

    def handle_list(self, **_):
        for credential in Credential.objects.all():
            state = {True: "ok", False: "refused", None: "unverified"}[credential.last_verification_ok]
            self.stdout.write(
                f"{credential.name}\t{credential.masked_key}\t{credential.base_url}\t"
                f"{credential.scope_label}\t{state}"
            )

    def handle_verify(self, name, **_):
        credential = _get(name)
        ok, message = sync.verify_credential(credential)
        self.stdout.write(message)
        if not ok:
            raise CommandError(f"{credential.name}: the key does not work.")

    def handle_remove(self, name, actor=None, **_):
        by = resolve_actor(actor)
        credential = _get(name)
        try:
            credentials.remove(credential, by=by)
        except credentials.StillTracking as refusal:
            raise CommandError(
                f"{name} still tracks {refusal.count} threads; delete or reassign them first."
            ) from None
        self.stdout.write(f"Removed credential {name}.")

    def stdin_is_tty(self):
        return os.isatty(0)


def _get(name):
    try:
        return Credential.objects.get(name=name)
    except Credential.DoesNotExist:
        known = ", ".join(Credential.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"No credential named {name!r} (known: {known}).") from None


def _form_errors(form) -> str:
    return "; ".join(
        f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
        for field, errors in form.errors.items()
    )

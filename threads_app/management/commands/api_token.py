"""Manage API tokens: `api_token create NAME --scopes register,read [--credential NAME] [--owner USERNAME]`,
`api_token list`, `api_token revoke NAME`. The secret is printed once, by `create`, and never again."""

from django.core.management.base import BaseCommand, CommandError

from threads_app import tokens
from threads_app.models import ApiToken, Thread


class Command(BaseCommand):
    help = "Create, list or revoke API tokens for the REST API and the capture proxy."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Make a token and print its secret (once).")
        create.add_argument("name")
        create.add_argument(
            "--scopes", required=True, help=f"Comma-separated, some of: {', '.join(tokens.SCOPES)}."
        )
        create.add_argument("--credential", default="", help="Bind it to this credential.")
        create.add_argument("--owner", default="", help="Its default owner (a username).")
        create.add_argument(
            "--stamp-owner", action="store_true", help="Proxy: stamp metadata.threadsite_owner."
        )
        create.add_argument("--requests-per-minute", type=int, default=None, help="Its rate (default 600).")
        sub.add_parser("list", help="List tokens (masked) with what entered through each.")
        revoke = sub.add_parser("revoke", help="Revoke a token for good.")
        revoke.add_argument("name")

    def handle(self, *args, action, **options):
        getattr(self, f"handle_{action}")(**options)

    def handle_create(self, name, scopes, credential, owner, stamp_owner, requests_per_minute, **_):
        try:
            found_credential, found_owner = tokens.resolve_names(credential=credential, owner=owner)
            made = tokens.create(
                name,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
                credential=found_credential,
                owner=found_owner,
                stamp_owner=stamp_owner,
                requests_per_minute=requests_per_minute,
            )
        except tokens.TokenError as error:
            raise CommandError(str(error)) from None
        self.stderr.write(f"Made token {made.token.name}. Its secret, shown this once:")
        self.stdout.write(made.secret)

    def handle_list(self, **_):
        from django.db.models import Count, Q

        rows = ApiToken.objects.select_related("credential", "owner").annotate(
            captured=Count("threads", filter=Q(threads__source=Thread.Source.CAPTURE)),
            registered=Count("threads", filter=Q(threads__source=Thread.Source.API)),
        )
        for token in rows:
            state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.name}\t{token.masked}\t{','.join(token.scopes)}\t"
                f"credential={token.credential.name if token.credential else '-'}\t"
                f"owner={token.owner.get_username() if token.owner else '-'}\t"
                f"captured={token.captured}\tregistered={token.registered}\tlast used {used}\t{state}"
            )
        self.stdout.write(f"{len(rows)} tokens")

    def handle_revoke(self, name, **_):
        token = ApiToken.objects.filter(name=name).first()
        if token is None:
            raise CommandError(f"No token is named “{name}”.")
        if not tokens.revoke(token):
            raise CommandError(f"{name} was already revoked.")
        self.stdout.write(f"Revoked {name}.")

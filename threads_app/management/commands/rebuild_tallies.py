from django.core.management.base import BaseCommand

from threads_app import tallies
from threads_app.models import OverviewCount


class Command(BaseCommand):
    help = (
        "Count every thread again into the overview's tallies, with the triggers that keep them "
        "(re)installed. "
        "Needed only after changing TIME_ZONE (days are counted in it) or after loading rows with the "
        "triggers switched off; writes to the thread table wait while it runs."
    )

    def handle(self, *args, **options):
        tallies.install()
        tallies.rebuild()
        tallies.fold()
        total = sum(OverviewCount.objects.filter(owner_key=-1).values_list("n", flat=True))
        self.stdout.write(f"Tallies rebuilt: {total} threads counted.")

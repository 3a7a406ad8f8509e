"""Static files storage: hashed, compressed names once `collectstatic` has written its manifest (production,
the Docker image), plain names served by WhiteNoise from the app folders before it has (a newcomer's
`manage.py runserver` right after cloning, without DEBUG), instead of a 500 on every page."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name):
        if not self.hashed_files:  # no manifest yet: collectstatic has not run
            return name
        return super().stored_name(name)

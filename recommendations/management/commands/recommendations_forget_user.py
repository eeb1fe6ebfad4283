"""``manage.py recommendations_forget_user USER``: erase a shopper's events (the right to erasure)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.capture.privacy import forget_user


class Command(BaseCommand):
    help = (
        "Erase a user's events, their anonymous visits linked at login and their cached data. "
        "USER is a username or a numeric id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="username or id")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()._default_manager
        wanted = options["user"].strip()
        user = users.filter(**{users.model.USERNAME_FIELD: wanted}).first()
        if user is None and wanted.isdigit():
            user = users.filter(pk=int(wanted)).first()
        if user is None:
            raise CommandError(f"No user {wanted!r} (give a username or an id).")
        erasure = forget_user(user)
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased {erasure.events} events and {erasure.visitors} linked visitor ids of {wanted}."
            )
        )

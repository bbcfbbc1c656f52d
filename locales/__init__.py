"""Stemcord's message catalogs (data only): ``<language>/LC_MESSAGES/stemcord.po`` and the
template ``stemcord.pot``. They are read and compiled at start by :mod:`cogs.i18n`; see
``docs/localisation.md`` for how to add or change a translation.
"""

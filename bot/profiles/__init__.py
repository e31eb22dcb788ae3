"""Office profiles: pydantic models of office_profiles/*.yaml, loading and checking."""

from bot.profiles.loader import CheckReport, Offices, check_profiles, load_offices, unsourced_rules
from bot.profiles.models import OfficeProfile

__all__ = ["CheckReport", "OfficeProfile", "Offices", "check_profiles", "load_offices", "unsourced_rules"]

"""Environment variable names of a settings class, and the README's settings table."""

from pydantic import AliasChoices
from pydantic_settings import BaseSettings


def env_names(settings_class: type[BaseSettings]) -> dict[str, str]:
    """Every environment variable the class reads -> its field name."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names = {}
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [f"{prefix}{field_name}".upper()]
        for choice in choices:
            names[choice.upper()] = field_name
    return names


def settings_table(classes: dict[str, type[BaseSettings]]) -> str:
    """A Markdown table: variable, services, default, meaning (first name of each field)."""
    rows: dict[str, tuple[list[str], str, str]] = {}
    for service, settings_class in classes.items():
        first_names = {}
        for name, field_name in env_names(settings_class).items():
            first_names.setdefault(field_name, name)
        for field_name, name in first_names.items():
            field = settings_class.model_fields[field_name]
            default = "(none)" if field.default is None else f"`{field.default}`"
            if name in rows and rows[name][1] == default:
                rows[name][0].append(service)
            else:
                key = name if name not in rows else f"{name} ({service})"
                rows[key] = ([service], default, field.description or "")
    lines = ["| variable | services | default | meaning |", "|---|---|---|---|"]
    for name, (services, default, meaning) in rows.items():
        lines.append(f"| `{name.split(' ')[0]}` | {', '.join(services)} | {default} | {meaning} |")
    return "\n".join(lines)

from __future__ import annotations

from typing import Any

from django import forms

from cdp.core.models import Source, Workspace


class SourceForm(forms.ModelForm):
    class Meta:
        model = Source
        fields = ["name", "kind"]
        labels = {"kind": "Where do events come from?"}
        widgets = {"name": forms.TextInput(attrs={"placeholder": "e.g. Marketing website", "autofocus": True})}

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.workspace = workspace

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Source.objects.filter(workspace=self.instance.workspace, name=name).exists():
            raise forms.ValidationError("This workspace already has a source with that name.")
        return name

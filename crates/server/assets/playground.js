// Token Router dashboard: the playground page.

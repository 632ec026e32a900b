// Token Router dashboard: the keys page.

// Token Router dashboard: the usage page.

// Token Router dashboard: the connect page.

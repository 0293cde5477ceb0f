"""The management API in Alibaba Cloud CDN's OpenAPI dialect, over a store."""

"""The dashboard's pages: each module renders one page from the query layer's rows."""

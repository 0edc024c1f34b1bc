"""Entry point: the seed's image pipeline (see dj_flows.flows.image_pipeline)."""

from dj_flows.flows.image_pipeline import image_pipeline

__all__ = ["image_pipeline"]

if __name__ == "__main__":
    image_pipeline()

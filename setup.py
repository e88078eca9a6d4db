from setuptools import find_packages, setup

setup(
    name="galaxy_express",
    version="0.1.0",
    description="Galaxy Express: interplanetary package delivery on baseplate.py",
    packages=find_packages(include=["galaxy_express", "galaxy_express.*"]),
    package_data={"galaxy_express": ["py.typed", "thrift/*.thrift", "static/swagger-ui/*"]},
    python_requires=">=3.11",
    entry_points={
        "console_scripts": [
            "galaxy-express-reporter = galaxy_express.reports.runner:main",
        ]
    },
)

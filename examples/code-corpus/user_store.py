"""A tiny in-memory user store."""
from dataclasses import dataclass, field


@dataclass
class User:
    user_id: int
    user_name: str
    email: str = ""
    active: bool = True


@dataclass
class UserStore:
    users: dict = field(default_factory=dict)

    def add_user(self, user: User) -> None:
        """Add a user to the store."""
        self.users[user.user_id] = user

    def get_user(self, user_id: int) -> User | None:
        """Get a user by id, or None."""
        return self.users.get(user_id)

    def find_user_by_name(self, user_name: str) -> User | None:
        """Find the first user with the given name."""
        for user in self.users.values():
            if user.user_name == user_name:
                return user
        return None

    def remove_user(self, user_id: int) -> bool:
        """Remove a user; return True when one was removed."""
        return self.users.pop(user_id, None) is not None

    def count_active_users(self) -> int:
        """Count the active users."""
        return sum(1 for user in self.users.values() if user.active)
